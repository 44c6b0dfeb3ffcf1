"""The Learn tab: what each part of a ViT does, written for students, with the shapes and
parameter counts of the model on the Build tab filled in as its sliders move.

`lesson` returns one Markdown text per entry of `LESSON_TITLES`; the page shows each in
its own fold so a student reads one idea at a time.
"""

from __future__ import annotations

from .. import faithfulness
from ..data import DatasetSpec, get_spec
from ..explain import ATTRIBUTIONS
from ..model import ViTConfig, num_parameters

LESSON_TITLES = (
    "The whole journey, with your model's shapes",
    "1 · Patches: cutting the picture into pieces",
    "2 · patch_to_embedding: from pixels to a token",
    "3 · cls_token: a seat for the answer",
    "4 · pos_embedding: where each patch came from",
    "5 · Attention: tokens looking at each other",
    "6 · The transformer: a stack of blocks",
    "7 · mlp_head: the answer",
    "8 · Training and inference: how it learns",
    "9 · Attention rollout and attention distance: where it looks",
    "10 · How far to trust a map",
    "All the knobs in one table",
)


def _n(value: int) -> str:
    return f"{value:,}"


def _augmentation(spec: DatasetSpec) -> str:
    """What the training does to each image of `spec`, as a clause ending in ", "."""
    changes = []
    if spec.augment_shift:
        changes.append(
            f"shifts each training image by up to {spec.augment_shift} pixel{'s' * (spec.augment_shift > 1)}"
        )
    if spec.augment_flip:
        changes.append("mirrors half of them left to right")
    return f"{' and '.join(changes)} so the model cannot memorise exact positions, " if changes else ""


def journey(config: ViTConfig, spec: DatasetSpec) -> str:
    """One line and one table: the image's way through the model, shape by shape."""
    c, counts = config, config.parameter_counts()
    S, p, C, N, P, D, T, K = (
        c.image_size,
        c.patch_size,
        c.channels,
        c.num_patches,
        c.patch_dim,
        c.dim,
        c.seq_len,
        c.num_classes,
    )
    return f"""
**({C}, {S}, {S}) → {N} patches of {P} values → ({T}, {D}) → {c.depth} blocks → ({D},) → {K} class scores**

| step | what happens | shape for one image | learned numbers |
|---|---|---|---|
| input | a {S}×{S} {"grey" if C == 1 else "colour"} image with {C} channel{"s" if C > 1 else ""} | ({C}, {S}, {S}) | |
| cut into patches | {c.grid_size}×{c.grid_size} squares of {p}×{p} pixels, each flattened | ({N}, {P}) | |
| `patch_to_embedding` | one linear layer turns each patch into a token of {D} numbers | ({N}, {D}) | {_n(counts["patch_to_embedding"])} |
| + `cls_token` | one learned token in front of the patches | ({T}, {D}) | {_n(counts["cls_token"])} |
| + `pos_embedding` | a learned position vector added to each token | ({T}, {D}) | {_n(counts["pos_embedding"])} |
| `transformer` | {c.depth} blocks of attention ({c.heads} heads) and feed-forward; the shape stays | ({T}, {D}) | {_n(counts["transformer"])} |
| `to_cls_token` | keep only the CLS token | ({D},) | |
| `mlp_head` | LayerNorm → Linear {D}→{c.mlp_dim} → GELU → Linear {c.mlp_dim}→{K} | ({K},) | {_n(counts["mlp_head"])} |
| softmax | scores become probabilities for the {K} classes of {spec.title} | ({K},) | |

In all: **{_n(num_parameters(counts))} learned numbers.** The code adds a batch dimension in front
of every shape: a batch of 128 images is (128, {C}, {S}, {S}) at the start and (128, {K}) at the end.
"""


def trust(spec: DatasetSpec) -> str:
    """How far to trust a map: the methods, the deletion and insertion test, and what the
    benchmark measured over real test images (for this dataset's shipped model, else MNIST's)."""
    measured = faithfulness.measured(spec.key) or faithfulness.measured("mnist")
    if measured is None:
        table = "*(The faithfulness benchmark has not been run here: `benchmarks/explanation_faithfulness.py`.)*"
    else:
        rows = "\n".join(
            f"| {ATTRIBUTIONS.get(method, 'random order (the baseline)')} | {row['deletion']:.2f} | "
            f"{row['insertion']:.2f} | **{row['score']:+.2f}** | "
            + ("" if method == "random" else f"{row['beats_random']:.0%}")
            + " |"
            for method, row in measured["methods"].items()
        )
        best = max((m for m in measured["methods"] if m != "random"), key=lambda m: measured["methods"][m]["score"])
        table = f"""Measured over **{measured["images"]:,} test images** of {get_spec(measured["dataset"]).title} with the
shipped model ({measured["patches"]} patches), each map made for the class the model predicted:

| map | deletion area (lower is better) | insertion area (higher is better) | score | beats random on |
|---|---:|---:|---:|---:|
{rows}

Here **{ATTRIBUTIONS[best].split(" (")[0]}** is the most faithful on average; no map is right for every
image, which is why Explore scores the one you are looking at."""
    return f"""
A heatmap over a picture looks convincing whether or not the model really used those patches.
So Explore draws more than one kind of map, and **tests each one on your own model and picture**:

- **Attention rollout** follows attention through the layers (section 9). It is the same for every
  class: it says where the model looked, not why it chose *this* answer.
- **Last layer's CLS attention**: one step of one layer, the simplest map.
- **Gradient × attention** (Chefer et al., 2021) weights each attention link by how much it raised the
  chosen class's score (its gradient), keeps only the links that helped, and follows them through the
  layers. It answers "why *this* class": pick another class and the map changes.
- **Occlusion** hides one patch at a time (paints it with the empty background) and measures how much
  the class's probability drops. Slow for big models, but it asks the model directly.

**The test** (deletion and insertion, Petsiuk et al., 2018): if a map is right, then deleting the
patches it ranks first should make the class's probability fall fast (a small *area under the
deletion curve*), and inserting them first into an empty picture should bring it back fast (a large
area under the insertion curve). Doing the same in a **random order** is the baseline: a map that
does no better than random tells you nothing about the model. The *score* is insertion area minus
deletion area.

{table}
"""


def lesson(config: ViTConfig, spec: DatasetSpec, batch_size: int, lr: float, train_images: int) -> list[str]:
    """The Markdown of every section of `LESSON_TITLES`, for this model and training."""
    c, counts = config, config.parameter_counts()
    S, p, C, g, N, P, D, T, H, dh, M, K, L = (
        c.image_size,
        c.patch_size,
        c.channels,
        c.grid_size,
        c.num_patches,
        c.patch_dim,
        c.dim,
        c.seq_len,
        c.heads,
        c.head_dim,
        c.mlp_dim,
        c.num_classes,
        c.depth,
    )
    per_block = counts["transformer"] // L
    steps_per_epoch = -(-train_images // batch_size)
    colour = "grey (one brightness value per pixel)" if C == 1 else "colour (red, green and blue per pixel)"
    class_list = ", ".join(spec.class_names)

    patches = f"""
A transformer reads a **sequence of tokens**, like the words of a sentence. A Vision Transformer
makes its "words" out of a picture: it cuts the {S}×{S} image (`image_size` = {S}) into squares of
{p}×{p} pixels (`patch_size` = {p}). That gives ({S} / {p})² = {g} × {g} = **{N} patches**.

Each patch is flattened into one list of {p} × {p} × {C} = **{P} numbers**: that is `patch_dim`.
`channels` = {C} because {spec.title} images are {colour}.

`image_size` must be divisible by `patch_size`, or the last patches would hang off the edge:
that is why the Build tab only offers divisors of {S}. Smaller patches mean more tokens and finer
detail, but more work: attention compares every token with every other, {T} × {T} = {_n(T * T)} pairs
per head for your model, so halving the patch size makes attention about 16 times dearer.

*See it:* Explore → **Tokens** draws the grid and the token sequence for any picture.
"""

    embedding = f"""
Each patch's {P} numbers go through the same **linear layer**, `patch_to_embedding` (a PyTorch
`nn.Linear`). A linear layer multiplies by a matrix and adds a vector:

$$ y = x A^T + b $$

Here x is one patch ({P} numbers), A is a matrix of {D} × {P} numbers and b holds {D} numbers,
so y, the patch's **token**, has `dim` = **{D} numbers**. All {N} patches share the same A and b:
({N}, {P}) → ({N}, {D}). That is {D} × {P} + {D} = **{_n(counts["patch_to_embedding"])} learned numbers**.

A and b are **parameters** (`nn.Parameter`): tensors PyTorch marks as *learnable*. They start
random, and after every training step the optimizer nudges each of them a little so the loss
goes down. A bigger `dim` gives every token more room to describe its patch, at more cost in
every later layer.

*See it:* Explore → **Filters** shows the main patterns the rows of A have learned to look for.
"""

    cls = f"""
Besides the {N} patch tokens the model has one extra token that belongs to no patch: the
**CLS token** ("classification"), `cls_token`, a parameter of shape (1, 1, {D}), {D} learned numbers.
It is placed in front, so the sequence has {N} + 1 = **{T} tokens** of {D} numbers: ({T}, {D}).

It starts the same for every image. Layer by layer, attention lets it gather what it needs from
the patches. After the last layer `to_cls_token` (an identity: it just picks token 0) hands its {D}
numbers to the classifier. The patch tokens' own outputs are not used for the answer.

*See it:* Explore → **Each head** shows where the CLS token looks in every layer.
"""

    positions = f"""
Attention on its own ignores order: shuffle the patches and every token would get the same
result. So the model adds a learned **position vector** to each token: `pos_embedding`, a
parameter of shape (1, {T}, {D}), one vector of {D} numbers per position, **{_n(counts["pos_embedding"])}
learned numbers**. Nobody tells the model what rows and columns are: it discovers that neighbouring
patches should get similar position vectors because it helps it classify.

*See it:* Explore → **Positions** compares every patch's position vector with every other's.
On the Train tab you can watch the pattern appear: random at step 0, a grid of bright blobs
around each patch's own place once the model has learned.
"""

    attention = f"""
In every layer each token asks a question of all the others. A linear layer (`to_qkv`) gives each
token three vectors: a **query** ("what am I looking for?"), a **key** ("what do I contain?") and a
**value** ("what do I pass on?"). A token's query is compared with every key (a dot product, divided
by √{dh}); a **softmax** turns each token's {T} scores into weights that add up to 1; the token's
new content is the weighted average of the values:

$$ \\text{{Attention}}(Q, K, V) = \\text{{softmax}}\\left(\\frac{{Q K^T}}{{\\sqrt{{d}}}}\\right) V $$

`heads` = {H}: the model does this {H} times side by side, each **head** with its own queries, keys
and values of {dh} numbers (`dim` / `heads` = {D} / {H}), so different heads can look for different
things. The weights of one layer form a ({H}, {T}, {T}) block: {_n(H * T * T)} numbers saying who looks
at whom. `to_out` mixes the heads' results back into {D} numbers per token. `dim` must be divisible by
`heads`, or the heads could not share the {D} numbers equally (the Build tab tells you when).
"""

    transformer = f"""
The `transformer` is `depth` = **{L} blocks**, one after another. Every block does two things, each
with a **LayerNorm** before it (it rescales each token's numbers to a standard spread) and a
**residual connection** around it (the block's result is *added* to its input, so a block only has to
learn a correction, and information can skip layers):

1. **multi-head attention** (the previous section): tokens exchange information;
2. a **feed-forward** network on each token by itself: Linear {D} → `mlp_dim` = {M}, GELU (a smooth
   "keep the positives"), Linear {M} → {D}.

The shape never changes: ({T}, {D}) goes in and comes out of every block. One block has
{_n(per_block)} learned numbers; all {L} have {_n(counts["transformer"])}, most of the model. More blocks can
learn more complex features but take longer to train.
"""

    head = f"""
After the last block only the CLS token's {D} numbers are kept. The `mlp_head` turns them into one
score per class: LayerNorm → Linear {D} → {M} → GELU → Linear {M} → `num_classes` = **{K}**
({_n(counts["mlp_head"])} learned numbers). The scores (logits) go through a softmax to become
probabilities that add up to 1, one for each of {class_list}.
The biggest is the prediction you see in Explore.
"""

    training = f"""
The model starts with random parameters and guesses. **Training** repeats one step:

1. take a **batch** of `batch_size` = {batch_size} training images;
2. run them through the model (the *forward pass*) and measure how wrong it is with the
   **cross-entropy loss**: small when the right class gets a high probability;
3. **backpropagation** works out, for every one of the {_n(num_parameters(counts))} parameters, which way to
   nudge it to lower the loss;
4. the optimizer (AdamW) nudges them, by steps scaled by the **learning rate** `lr` = {lr:g}.

An **epoch** is one pass over all {_n(train_images)} training images: {_n(steps_per_epoch)} steps of {batch_size}.
Too high a learning rate makes the loss jump around; too low and it crawls. This app also warms
the learning rate up and lowers it smoothly to zero at the end, {_augmentation(spec)}and scores the
model on test images it never trains on.

**Inference** is the forward pass alone, with the parameters frozen: what Explore does with your picture.
"""

    rollout = f"""
A single attention map shows one step of one head. But information flows through all {L} layers,
and around them through the residual connections. **Attention rollout** follows it:

1. in each layer, **fuse the heads** (their mean, max or min: the *head fusion* control);
2. set the weakest weights to zero (the *discard ratio* control) to keep only the strong paths;
3. add the identity and rescale each row to 1: the residual connection lets every token keep itself;
4. multiply the layers' matrices from the first to the last.

The CLS token's row of the result, over the {N} patches, is how much each patch flowed into the
answer: the heatmap Explore lays over your picture. It is an approximation: it follows attention
only, not the feed-forward parts.

**Mean attention distance** asks, for each head, how far (in pixels) a patch looks on average,
weighted by attention: like the receptive field of a convolutional network. Early layers usually
mix near-sighted and far-sighted heads; later layers look across the whole {S}×{S} image.
"""

    knobs = f"""
| knob | your value | what it changes |
|---|---|---|
| `image_size` | {S} | size of the square input image in pixels (set by the dataset) |
| `channels` | {C} | values per pixel: 1 for grey, 3 for colour (set by the dataset) |
| `patch_size` | {p} | side of each square patch; must divide `image_size` |
| `num_classes` | {K} | how many answers there are (set by the dataset) |
| `dim` | {D} | numbers per token: the width of the whole model |
| `depth` | {L} | transformer blocks stacked one after another |
| `heads` | {H} | attention heads per block; `dim` must be divisible by it |
| `mlp_dim` | {M} | width of the feed-forward layers (and of the head's hidden layer) |
| `patch_dim` | {P} | numbers in one flattened patch: `patch_size`² × `channels` (follows from the others) |
| `lr` | {lr:g} | learning rate: how big each nudge of the parameters is |
| `batch_size` | {batch_size} | images per training step |
"""
    return [
        journey(config, spec),
        patches,
        embedding,
        cls,
        positions,
        attention,
        transformer,
        head,
        training,
        rollout,
        trust(spec),
        knobs,
    ]
