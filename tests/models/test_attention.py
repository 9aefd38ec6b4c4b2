"""Attention (book chapter 11): each hand-written op against a manual computation or the torch
built-in, forward and backward; positional encoding against its formula; Nadaraya-Watson regression."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from divekit.book.attention import (
    average_pooling,
    kernel_regression_data,
    leave_one_out,
    nadaraya_watson,
    nadaraya_watson_demo,
    parametric_nadaraya_watson,
    positional_encoding_plot,
    train_nw_regression,
)
from divekit.core.plot import attention_heatmap
from divekit.models.attention import (
    AdditiveAttention,
    DotProductAttention,
    MultiHeadAttention,
    PositionalEncoding,
    masked_softmax,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def manual_masked_softmax(X, lens):
    """Row by row: softmax over the first lens[b][q] entries, zeros after."""
    out = torch.zeros_like(X)
    for b in range(X.shape[0]):
        for q in range(X.shape[1]):
            n = int(lens[b][q])
            out[b, q, :n] = torch.exp(X[b, q, :n]) / torch.exp(X[b, q, :n]).sum()
    return out


def test_masked_softmax_book_examples():
    X = torch.rand(2, 2, 4, generator=torch.Generator().manual_seed(0))
    # valid_lens (B,): the same for both queries of a batch row
    w = masked_softmax(X, torch.tensor([2, 3]))
    assert torch.allclose(w, manual_masked_softmax(X, [[2, 2], [3, 3]]))
    assert (w[0, :, 2:] == 0).all() and (w[1, :, 3:] == 0).all()
    # valid_lens (B, Q): one per query
    w = masked_softmax(X, torch.tensor([[1, 3], [2, 4]]))
    assert torch.allclose(w, manual_masked_softmax(X, [[1, 3], [2, 4]]))
    assert torch.equal(w[0, 0], torch.tensor([1.0, 0, 0, 0]))
    assert torch.allclose(w.sum(-1), torch.ones(2, 2))
    # no mask: the plain softmax
    assert torch.allclose(masked_softmax(X, None), F.softmax(X, dim=-1))


def test_masked_softmax_leaves_input_alone_and_rejects_bad_lengths():
    X = torch.randn(2, 3, 4)
    before = X.clone()
    masked_softmax(X, torch.tensor([1, 2]))
    assert torch.equal(X, before)  # the book's version writes -1e6 into X
    with pytest.raises(ValueError, match="valid_lens"):
        masked_softmax(X, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="valid_lens"):
        masked_softmax(X, torch.ones(2, 4))


def test_dot_product_attention_against_torch():
    torch.manual_seed(0)
    queries = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(2, 10, 8, dtype=torch.float64, requires_grad=True)
    values = torch.randn(2, 10, 4, dtype=torch.float64, requires_grad=True)
    valid_lens = torch.tensor([2, 6])
    attention = DotProductAttention().eval()
    out = attention(queries, keys, values, valid_lens)
    assert out.shape == (2, 3, 4) and attention.attention_weights.shape == (2, 3, 10)
    assert (attention.attention_weights[0, :, 2:] == 0).all() and (attention.attention_weights[1, :, 6:] == 0).all()

    mask = torch.arange(10)[None, None, :] < valid_lens[:, None, None]  # (B, 1, K): True where attended
    leaves = (queries, keys, values)
    expected = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask)
    assert torch.allclose(out, expected)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, leaves, g)
    expected_grads = torch.autograd.grad(expected, leaves, g)
    for a, b in zip(grads, expected_grads):
        assert torch.allclose(a, b)


def test_additive_attention_book_example():
    torch.manual_seed(0)
    # the book's example: every key equal, so the weights are uniform over the valid keys
    queries, keys = torch.normal(0, 1, (2, 1, 20)), torch.ones(2, 10, 2)
    values = torch.arange(40, dtype=torch.float32).reshape(1, 10, 4).repeat(2, 1, 1)
    attention = AdditiveAttention(query_size=20, key_size=2, num_hiddens=8, dropout=0.1).eval()
    out = attention(queries, keys, values, torch.tensor([2, 6]))
    assert out.shape == (2, 1, 4)
    w = attention.attention_weights
    assert torch.allclose(w[0, 0, :2], torch.full((2,), 1 / 2)) and (w[0, 0, 2:] == 0).all()
    assert torch.allclose(w[1, 0, :6], torch.full((6,), 1 / 6)) and (w[1, 0, 6:] == 0).all()
    assert torch.allclose(out[0, 0], values[0, :2].mean(0)) and torch.allclose(out[1, 0], values[1, :6].mean(0))


def test_additive_attention_scores_match_formula():
    torch.manual_seed(1)
    attention = AdditiveAttention(query_size=5, key_size=3, num_hiddens=7)
    q, k, v = torch.randn(2, 4, 5), torch.randn(2, 6, 3), torch.randn(2, 6, 2)
    out = attention(q, k, v)
    scores = torch.empty(2, 4, 6)
    for b in range(2):
        for i in range(4):
            for j in range(6):
                features = torch.tanh(attention.W_q.weight @ q[b, i] + attention.W_k.weight @ k[b, j])  # (h,)
                scores[b, i, j] = attention.w_v.weight[0] @ features
    assert torch.allclose(attention.attention_weights, F.softmax(scores, dim=-1), atol=1e-6)
    assert torch.allclose(out, F.softmax(scores, dim=-1) @ v, atol=1e-6)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_multi_head_attention_equals_torch_builtin(bias, masked):
    torch.manual_seed(0)
    num_hiddens, num_heads, B, Q, K = 12, 3, 2, 4, 5
    ours = MultiHeadAttention(num_hiddens, num_heads, bias=bias).double()
    theirs = nn.MultiheadAttention(num_hiddens, num_heads, bias=bias, batch_first=True).double()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.W_q.weight, ours.W_k.weight, ours.W_v.weight]))
        theirs.out_proj.weight.copy_(ours.W_o.weight)
        if bias:
            theirs.in_proj_bias.copy_(torch.cat([ours.W_q.bias, ours.W_k.bias, ours.W_v.bias]))
            theirs.out_proj.bias.copy_(ours.W_o.bias)
    queries = torch.randn(B, Q, num_hiddens, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(B, K, num_hiddens, dtype=torch.float64, requires_grad=True)
    values = torch.randn(B, K, num_hiddens, dtype=torch.float64, requires_grad=True)
    valid_lens = torch.tensor([3, 5]) if masked else None
    key_padding_mask = torch.arange(K)[None, :] >= valid_lens[:, None] if masked else None  # (B, K): True = pad

    out = ours(queries, keys, values, valid_lens)
    expected, expected_w = theirs(queries, keys, values, key_padding_mask=key_padding_mask,
                                  need_weights=True, average_attn_weights=False)
    assert out.shape == (B, Q, num_hiddens)
    assert torch.allclose(out, expected)
    assert ours.attention_weights.shape == (B * num_heads, Q, K)
    assert torch.allclose(ours.head_attention_weights(), expected_w)  # (B, heads, Q, K)

    g = torch.randn_like(out)
    inputs = [queries, keys, values]
    ours_weights = [ours.W_q.weight, ours.W_k.weight, ours.W_v.weight, ours.W_o.weight]
    ours_grads = torch.autograd.grad(out, inputs + ours_weights, g)
    theirs_grads = torch.autograd.grad(expected, inputs + [theirs.in_proj_weight, theirs.out_proj.weight], g)
    for a, b in zip(ours_grads[:3], theirs_grads[:3]):
        assert torch.allclose(a, b)
    assert torch.allclose(torch.cat(ours_grads[3:6]), theirs_grads[3])
    assert torch.allclose(ours_grads[6], theirs_grads[4])


def test_multi_head_attention_reshapes_are_inverse_and_heads_divide():
    mha = MultiHeadAttention(8, 2)
    X = torch.randn(3, 5, 8)
    assert mha.transpose_qkv(X).shape == (6, 5, 4)
    assert torch.equal(mha.transpose_qkv(X)[1], X[0, :, 4:])  # batch row 0, head 1
    assert torch.equal(mha.transpose_output(mha.transpose_qkv(X)), X)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


def test_positional_encoding_formula():
    d = 32
    pe = PositionalEncoding(d, dropout=0.5).eval()
    X = torch.zeros(1, 60, d)
    assert torch.allclose(pe(X), pe.P[:, :60])
    for i in (0, 1, 7, 59):
        for j in (0, 3, 15):
            angle = i / 10000 ** (2 * j / d)
            assert math.isclose(pe.P[0, i, 2 * j], math.sin(angle), abs_tol=1e-6)
            assert math.isclose(pe.P[0, i, 2 * j + 1], math.cos(angle), abs_tol=1e-6)
    assert torch.allclose(pe(X[:, :5], offset=10), pe.P[:, 10:15])
    assert PositionalEncoding(7).P.shape == (1, 1000, 7)  # an odd size works too
    with pytest.raises(ValueError, match="max_len"):
        PositionalEncoding(4, max_len=8)(torch.zeros(1, 9, 4))


def test_kernel_regression_data_is_the_books():
    data = kernel_regression_data()
    assert data.x_train.shape == (50,) and (data.x_train.diff() >= 0).all()
    assert 0 <= data.x_train.min() and data.x_train.max() < 5
    assert torch.allclose(data.x_test, torch.arange(0, 5, 0.1))
    assert torch.allclose(data.y_truth, 2 * torch.sin(data.x_test) + data.x_test**0.8)
    noise = data.y_train - (2 * torch.sin(data.x_train) + data.x_train**0.8)
    assert 0.3 < float(noise.std()) < 0.7
    assert torch.equal(leave_one_out(torch.arange(3)), torch.tensor([[1, 2], [0, 2], [0, 1]]))


def test_nadaraya_watson_estimators():
    data = kernel_regression_data()
    mse = lambda y_hat: float(((y_hat - data.y_truth) ** 2).mean())  # noqa: E731
    baseline = average_pooling(data.x_train, data.y_train, data.x_test)
    y_np, w_np = nadaraya_watson(data.x_train, data.y_train, data.x_test)
    assert w_np.shape == (50, 50) and torch.allclose(w_np.sum(1), torch.ones(50))
    assert mse(y_np) < 0.7 * mse(baseline)

    net, losses = train_nw_regression(data.x_train, data.y_train)
    assert losses[-1] < losses[0]
    assert float(net.w.detach().abs()) > 1
    y_p, w_p = parametric_nadaraya_watson(net, data.x_train, data.y_train, data.x_test)
    assert w_p.shape == (50, 50) and torch.allclose(w_p.sum(1), torch.ones(50))
    # a wider w narrows the kernel: each query puts more weight on its nearest training inputs
    assert float(w_p.max(1).values.mean()) > 2 * float(w_np.max(1).values.mean())
    assert mse(y_p) < mse(baseline)


def test_attention_plots_are_written(tmp_path):
    result = nadaraya_watson_demo(tmp_path)
    assert result["test_mse_nonparametric"] < result["test_mse_average_pooling"]
    assert result["learned_w"] > 1
    assert len(result["plots"]) == 5
    for path in result["plots"].values():
        assert path.endswith(".png") and (tmp_path / path.rsplit("/", 1)[-1]).stat().st_size > 1000
    assert positional_encoding_plot(tmp_path / "pe.png").stat().st_size > 1000
    assert attention_heatmap(torch.rand(2, 3, 4, 5), tmp_path / "grid.png", titles=list("abc")).stat().st_size > 1000
    with pytest.raises(ValueError, match="weights"):
        attention_heatmap(torch.rand(4), tmp_path / "bad.png")
