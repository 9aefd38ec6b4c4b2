"""The chapters' small experiments, each a plain function (`divekit demo NAME` runs them): sequence
autoregression, generalization and weight decay, numerical stability, augmentation figures,
logistic regression on hours-to-pass, data parallelism by hand."""
