"""BERT's training tasks: pretraining (masked language model + next sentence prediction, book
15.8-15.10) and token tagging (book 16.6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.bert import tagging_loss
from .base import Task, register_task


def bert_pretrain_losses(mlm_Y_hat: torch.Tensor, nsp_Y_hat: torch.Tensor, mlm_weights: torch.Tensor,
                         mlm_Y: torch.Tensor, nsp_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(MLM loss, NSP loss): cross-entropy averaged over the real prediction positions (weight 1)
    and over the examples.

    The book's PyTorch code multiplies an already averaged cross-entropy by the weights, which
    averages over the padded prediction slots too; here each position's loss is weighted.
    """
    V = mlm_Y_hat.shape[-1]
    per_position = F.cross_entropy(mlm_Y_hat.reshape(-1, V), mlm_Y.reshape(-1), reduction="none")  # (B * P,)
    mlm_l = (per_position * mlm_weights.reshape(-1)).sum() / (mlm_weights.sum() + 1e-8)
    nsp_l = F.cross_entropy(nsp_Y_hat, nsp_y)
    return mlm_l, nsp_l


@register_task
class BertPretrain(Task):
    """BERT pretraining (book 15.10): loss = MLM + NSP.

    Metrics: loss (their sum), mlm_loss (per real prediction position), mlm_acc, nsp_loss and
    nsp_acc, each averaged over the epoch; they land in metrics.json and curves.png as
    train_mlm_loss, valid_nsp_loss, ...
    """

    name = "bert-pretrain"

    def default_loss(self, outputs, targets, training):
        (_, mlm_Y_hat, nsp_Y_hat), (mlm_weights, mlm_Y, nsp_y) = outputs, targets
        return sum(bert_pretrain_losses(mlm_Y_hat, nsp_Y_hat, mlm_weights, mlm_Y, nsp_y))

    def step(self, model, batch):
        tokens, segments, valid_lens, pred_positions, mlm_weights, mlm_Y, nsp_y = batch
        _, mlm_Y_hat, nsp_Y_hat = model(tokens, segments, valid_lens, pred_positions)
        mlm_l, nsp_l = bert_pretrain_losses(mlm_Y_hat, nsp_Y_hat, mlm_weights, mlm_Y, nsp_y)
        loss = mlm_l + nsp_l
        n = nsp_y.shape[0]
        preds = mlm_weights.sum()
        with torch.no_grad():
            mlm_correct = ((mlm_Y_hat.argmax(dim=-1) == mlm_Y).float() * mlm_weights).sum()
            nsp_correct = (nsp_Y_hat.argmax(dim=-1) == nsp_y).sum()
        sums = {"loss": loss.detach() * n, "mlm_loss": mlm_l.detach() * preds, "mlm_acc": mlm_correct,
                "mlm_preds": preds, "nsp_loss": nsp_l.detach() * n, "nsp_acc": nsp_correct}
        return loss, sums, n

    def summarize(self, totals, n):
        preds = max(totals["mlm_preds"], 1.0)
        out = {"mlm_loss": totals["mlm_loss"] / preds, "mlm_acc": totals["mlm_acc"] / preds,
               "nsp_loss": totals["nsp_loss"] / n, "nsp_acc": totals["nsp_acc"] / n}
        out["loss"] = out["mlm_loss"] + out["nsp_loss"]
        return out


@register_task
class BertTagging(Task):
    """Token tagging: batches (tokens, segments, valid_lens, tags) with tags -100 where there is
    nothing to tag (`<cls>`, `<sep>`, padding) -> logits (B, T, K); cross-entropy and accuracy per
    tagged token."""

    name = "bert-tagging"

    def default_loss(self, logits, tags, training):
        return tagging_loss(logits, tags)

    def step(self, model, batch):
        tokens, segments, valid_lens, tags = batch
        logits = model(tokens, segments, valid_lens)  # (B, T, K)
        loss = self.loss(model, logits, tags)
        real = tags != -100
        count = real.sum()
        correct = ((logits.detach().argmax(dim=-1) == tags) & real).sum()
        return loss, {"loss": loss.detach() * count, "acc": correct, "tokens": count}, tags.shape[0]

    def summarize(self, totals, n):
        tokens = max(totals.pop("tokens"), 1.0)
        return {k: v / tokens for k, v in totals.items()}
