// MathJax settings for the notebooks' $...$ and $$...$$ math (loaded before MathJax itself).
window.MathJax = {
  tex: { inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]] },
  options: { ignoreHtmlClass: "jp-CodeCell|highlight", processHtmlClass: "jp-MarkdownCell|arithmatex" },
};
