"""The binary-classification task: one logit per example, sigmoid cross-entropy, accuracy at 0.5.

A dataset with two classes (a CSV target such as Titanic's Survived, the hours-to-pass toy data,
scikit-learn's breast cancer set) says `task="binary-classification"`; its targets are 0/1 (the
index of the class in `DataBundle.classes`). A model for it returns logits of shape (N, 1) or
(N,); P(class 1) = sigmoid(logit), and the predicted class is 1 when the logit is > 0, i.e. when
the probability is > 0.5.
"""

from __future__ import annotations

import torch.nn.functional as F

from .base import Task, register_task


@register_task
class BinaryClassification(Task):
    """Inputs -> one logit; binary cross-entropy with logits; metrics loss and accuracy at p = 0.5."""

    name = "binary-classification"

    def default_loss(self, logits, y, training):
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype).reshape(logits.shape))

    def step(self, model, batch):
        X, y = batch[0], batch[1]
        logits = model(X)
        if logits.dim() > 1 and logits.shape[-1] != 1:
            raise ValueError(f"binary classification needs one logit per example, the model gives {logits.shape[-1]}; "
                             "use a one-output model (logistic-regression, binary-mlp, mlp) or "
                             "--data-arg task=classification for a softmax over the two classes")
        loss = self.loss(model, logits, y)
        n = y.shape[0]
        correct = ((logits.detach().reshape(-1) > 0) == (y.reshape(-1) > 0.5)).sum()
        return loss, {"loss": loss.detach() * n, "acc": correct}, n
