"""Print every stage of the textbook attention progression on "Your journey starts with one step".

Run: python examples/attention_walkthrough.py     (see docs/attention.md for the explanations)
"""

import torch

from hfgpt.textbook import attention as ta

TOKENS = ["Your", "journey", "starts", "with", "one", "step"]
INPUTS = torch.tensor(
    [
        [0.43, 0.15, 0.89],
        [0.55, 0.87, 0.66],
        [0.57, 0.85, 0.64],
        [0.22, 0.58, 0.33],
        [0.77, 0.25, 0.10],
        [0.05, 0.80, 0.55],
    ]
)


def show(title: str, tensor: torch.Tensor) -> None:
    print(f"\n== {title} {tuple(tensor.shape)}")
    print(tensor.detach())


def main() -> None:
    torch.manual_seed(123)
    torch.set_printoptions(precision=4, sci_mode=False)
    batch = torch.stack([INPUTS, INPUTS])  # (2, 6, 3): the later stages take batches

    show("1. simplified attention weights (softmax of x @ x.T)", ta.simplified_attention_weights(INPUTS))
    show("   simplified context vectors (weights @ x)", ta.simplified_self_attention(INPUTS))

    v2 = ta.SelfAttentionV2(d_in=3, d_out=2)
    v1 = ta.SelfAttentionV1(d_in=3, d_out=2)
    with torch.no_grad():  # V1 with V2's weights transposed computes the same thing
        for name in ("W_query", "W_key", "W_value"):
            getattr(v1, name).copy_(getattr(v2, name).weight.T)
    show("2. SelfAttentionV1 context (trainable q/k/v, scaled by 1/sqrt(d_k))", v1(INPUTS))
    print("   SelfAttentionV2 (nn.Linear) gives the same:", torch.allclose(v1(INPUTS), v2(INPUTS)))

    causal = ta.CausalAttention(d_in=3, d_out=2, context_length=6, dropout=0.5).eval()
    show("3. CausalAttention weights, eval mode (no future tokens)", causal(batch, return_weights=True)[1][0])
    causal.train()
    show("   the same in train mode (dropout 0.5 on the weights)", causal(batch, return_weights=True)[1][0])

    wrapper = ta.MultiHeadAttentionWrapper(d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2)
    show("4. MultiHeadAttentionWrapper output (2 heads x 2 features)", wrapper(batch)[0])

    mha = ta.MultiHeadAttention(d_in=3, d_out=4, context_length=6, dropout=0.0, num_heads=2)
    with torch.no_grad():  # stack the wrapper's heads into the big projections, out_proj = identity
        for name in ("W_query", "W_key", "W_value"):
            getattr(mha, name).weight.copy_(torch.cat([getattr(h, name).weight for h in wrapper.heads]))
        mha.out_proj.weight.copy_(torch.eye(4))
        mha.out_proj.bias.zero_()
    show("5. MultiHeadAttention output (one matmul for all heads)", mha(batch)[0])
    print("   equals the wrapper:", torch.allclose(mha(batch), wrapper(batch), atol=1e-6))
    for token, row in zip(TOKENS, mha(batch, return_weights=True)[1][0, 0]):
        print(f"   head 0, {token:>8} attends to: {row.detach().numpy().round(2)}")


if __name__ == "__main__":
    main()
