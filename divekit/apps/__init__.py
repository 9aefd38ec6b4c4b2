"""Applications of trained runs, one module per book topic: prediction (images, text, translation),
detection, segmentation, style transfer, BERT embeddings, the Kaggle house-price workflow, your own
tables, and the speed bench. The command line (divekit.cli) calls these."""
