"""The book's from-scratch math: convolution and pooling, activation functions, initialization,
optimizers, learning-rate schedules, bounding boxes and NMS, BLEU, k-fold splits and
confusion-matrix metrics. Each op is checked against its torch built-in in the tests. Imports only
divekit.core."""
