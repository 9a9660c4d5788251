"""Typed run configuration: the dataclasses of every section, with defaults.

A run's config is the shared sections below plus one section per registered method, named after
it (core/method.py `METHODS`; importing the method modules here registers them): RunConfig is made
from the registry, so a new method's section needs one import line here (below) and no other edit.
The config written into a run folder and hashed into its id holds the shared fields and the
section of the run's own method only (bench/config/runfile.py), so adding a method never changes another's run ids.

The rest of the package: bench/config/parse.py builds a RunConfig from YAML and dotted overrides
(`optim.lr=5e-4`), bench/config/ranges.py holds every number's range, bench/config/validate.py the
checks that span fields, registries and the dataset (`build_config`), bench/config/yamlio.py reads
YAML within bounds, bench/config/runfile.py writes, reads and hashes a run's config.yaml.
"""

from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any

# isort: off
# The methods this harness knows: importing each module registers its method (and its section, in
# this order in RunConfig). A new method adds its module here.
import ijepa.model  # noqa: F401
import baselines.mae  # noqa: F401
import baselines.data2vec  # noqa: F401
import baselines.lejepa  # noqa: F401

# isort: on
from bench.errors import BenchError
from core.method import METHODS, MethodSpec
from core.registry import Registry

BUDGET_KINDS = ("device_hours", "flops", "steps", "epochs")

# A field added after run ids were published is written (and hashed) only when it differs from
# its default, so the runs that existed before it keep their ids and resume.
ADDED_LATER = {"written": "when_set"}


def later(default: Any) -> Any:
    """A field added after run ids were published (see ADDED_LATER)."""
    return field(default=default, metadata=ADDED_LATER)


def later_section(section: type) -> Any:
    """A section added after run ids were published: written (and hashed) only when a field of it is set,
    and then only those fields (bench/config/runfile.py)."""
    return field(default_factory=section, metadata=ADDED_LATER)


@dataclass
class DataConfig:
    name: str = "fashion-mnist"
    root: str | None = None  # None: the dataset's default location
    subset: str | None = None  # imagefolder: a SimCLR-style list such as 1percent.txt
    # Fashion-MNIST's 28 px resized to 32: with patch 4 an 8x8 grid (see ijepa/model.py's default_config)
    image_size: int = 32
    num_workers: int = 0
    # batches made on the device from a resident copy of the split (bench/train/device_batches.py);
    # None (auto): on CUDA, for a dataset held in memory that fits a quarter of the free device memory
    on_device: bool | None = later(None)


@dataclass
class BudgetConfig:
    """How much compute a run may spend. device_hours = wall-clock of the training loop x devices."""

    kind: str = "steps"
    value: float = 100.0


@dataclass
class OptimConfig:
    """AdamW with warm-up + cosine lr and a cosine weight-decay ramp (I-JEPA's recipe).

    Learning rates are per `lr_batch` images and scale linearly with the global batch: every
    method's recipe gives its paper's rates per 256 images (I-JEPA: 1e-3 at batch 2048 is 1.25e-4).
    `lr_factor` multiplies lr, start_lr and final_lr: the knob a sweep's `tune:` searches, one
    grid for every method. `warmup` is a fraction of the paper's run (40 of 300 epochs in the
    official config), so of the budget under `recipe: budget`.
    """

    batch_size: int = 128  # global: split evenly over the processes of a multi-process job
    lr: float = 1e-3 * 256 / 2048
    start_lr: float = 2e-4 * 256 / 2048
    final_lr: float = 1e-6 * 256 / 2048
    warmup: float = 40 / 300
    weight_decay: float = 0.04
    final_weight_decay: float = 0.4
    betas: tuple[float, float] = (0.9, 0.999)
    clip_grad: float | None = None
    # > 0: the lrs are per `lr_batch` images, scaled by the global batch / lr_batch; 0: unscaled
    lr_batch: int = 256
    lr_factor: float = 1.0


VIEWS = ("last_avg", "last_cls", "last4_avg", "last4_cls")
# The headline views are the same for every method (average-pooled patch tokens); a [cls] token,
# which only some methods have, is scored as an extra column, never in the headline.
HEADLINE_VIEWS = ("last_avg", "last4_avg")
EXTRA_VIEWS = ("last_cls", "last4_cls")
EVAL_ENCODERS = ("auto", "student", "teacher")
EVAL_SCOPES = ("full", "val")
RECIPE_KINDS = ("budget", "paper")


@dataclass
class EvalConfig:
    """Frozen-feature evaluation (shared/reference/evals.md). Features are extracted once per
    checkpoint and split — the last `n_layers` blocks, average-pooled and [cls] — and cached;
    a *view* picks from them: `last_avg`, `last_cls`, `last4_avg`, `last4_cls` (4 = concat).

    - k-NN: DINO's weighted k-NN at every k of `knn_k`, on `knn_view`; few-shot k-NN with
      n labelled images per class for each n of `fewshot_n`, over `draws` draws.
    - Linear probe: one head per (view, lr, weight decay) trained at once on the cached
      features (SGD, cosine), the best on a `val_fraction` held out of train reported on test.
      The headline probe chooses among `linear_views` (pooled patch tokens, the same for every
      method); `extra_views` ([cls]) are probed apart and reported as `linear_cls`.
    - Validation score (`val`): k-NN top-1 (k=20) from the rest of the training images onto a
      stratified `val_fraction` held out of them (of `val_images` drawn from train, stratified;
      None: all). `scope: val` computes only that and never reads the test split: what a sweep's
      tuning runs are scored by.
    - Low-shot: the same probe on a stratified `lowshot` fraction of the train labels, over
      `draws` draws (mean ± std), or SimCLR's list `lowshot_file` (ImageNet's 1percent.txt).
    - `train_images`, `test_images`: a smoke run reads only a stratified subset of each split
      (the same images for every run); every result table reads them all (None).
    """

    knn_k: tuple[int, ...] = (10, 20, 100, 200)
    temperature: float = 0.07
    batch_size: int = 512
    n_layers: int = later(4)
    knn_view: str = later("last_avg")
    fewshot_n: tuple[int, ...] = later((1, 5, 10))
    linear_views: tuple[str, ...] = later(HEADLINE_VIEWS)
    extra_views: tuple[str, ...] = EXTRA_VIEWS
    linear_lrs: tuple[float, ...] = later((0.01, 0.03, 0.1, 0.3, 1.0))
    linear_wds: tuple[float, ...] = later((0.0, 1e-4))
    linear_epochs: int = later(10)
    linear_min_steps: int = later(500)  # low-shot subsets get at least this many steps
    linear_bn: bool = later(True)  # BatchNorm without affine before the head (MAE's convention)
    val_fraction: float = later(0.1)
    lowshot: tuple[float, ...] = later((0.01,))
    lowshot_file: str | None = later(None)
    draws: int = later(3)
    # auto: the encoder each method's official code evaluates (I-JEPA: the EMA target encoder;
    # MAE, data2vec 2.0, data2vec v1, LeJEPA: the student); student | teacher pick one explicitly.
    encoder: str = later("auto")
    scope: str = "full"
    # feature extraction's arithmetic: fp32, or bf16 autocast (features are stored in fp16 either way)
    precision: str = later("fp32")
    val_images: int | None = 20_000
    # A smoke run's evaluation (sweeps/demo.yaml): every evaluation reads a stratified subset of this
    # many train and test images, the same for every run; None, the default: all of them.
    train_images: int | None = later(None)
    test_images: int | None = later(None)


@dataclass
class HealthConfig:
    """Label-free health signals (bench/train/health.py): RankMe, the spread of the embeddings, the
    distance of the evaluated encoder from its initialisation and the method's own diagnostic, measured
    on a fixed batch of `images` training images at step 0, every `every` optimizer steps and at the
    last step; `every: 0` switches them off. The default 100, a multiple of `log_every`'s 20, puts every
    measurement after step 0 into the step's metrics record."""

    every: int = later(100)
    images: int = later(512)


# The version of what a run's config means. Version 2 (issue 11): data2vec rows score the student,
# data2vec 2.0's [cls] loss, top-K, EMA horizon and augmentation follow fairseq, data2vec v1's masks,
# colour jitter and [cls] weight decay follow its BEiT code, I-JEPA's init and per-process mask
# truncation follow the official pipeline, MAE resizes bicubic, and the embedded default is 32 px.
# Version 3 (issue 12): recipes scale with the budget (`recipe`), every learning rate follows one rule
# (per 256 images, scaled to the batch), and the headline probe reads the same views for every method.
# Written into every config.yaml and hashed into every run id; a config.yaml without it is version 1.
CONFIG_VERSION = 3


@dataclass
class SharedConfig:
    """The fields every run has, whatever its method, in config.yaml's order. RunConfig is these plus
    one section per registered method, between `optim` and `eval`."""

    version: int = CONFIG_VERSION
    method: str = "ijepa"
    # budget: every hyper-parameter a paper defines in steps or epochs (warm-up, weight-decay and EMA
    # schedules, data2vec 2.0's 100k-update EMA ramp) keeps its ratio to the paper's run length, and EMA
    # momenta keep their time constant 1/(1-m) as that fraction (core/clock.py); paper: the papers'
    # absolute values, the schedules read at step / the paper's run length
    recipe: str = "budget"
    backbone: str = "vit_tiny_patch4"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    # train through torch.compile (bench/train/devices.py `compiled`); each batch shape's first step,
    # whose FLOPs are counted, runs eagerly
    compile: bool = later(False)
    log_every: int = 20
    checkpoint_every_s: float = 300.0
    data: DataConfig = field(default_factory=DataConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    health: HealthConfig = later_section(HealthConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


SHARED = frozenset(f.name for f in fields(SharedConfig))


def run_config_class(methods: Registry[MethodSpec] = METHODS) -> type:
    """SharedConfig's fields with a section per method of `methods` (named after it, in registration
    order) before `eval`: RunConfig. Tests make one with a throwaway method registered."""
    shared = [
        (f.name, f.type, field(default=f.default, default_factory=f.default_factory, metadata=f.metadata))
        for f in fields(SharedConfig)
    ]
    sections = [(name, spec.section, field(default_factory=spec.default)) for name, spec in methods.items()]
    cls = make_dataclass("RunConfig", [*shared[:-1], *sections, shared[-1]])
    cls.__module__ = __name__  # pickled by name (submitit's jobs): bench.config.schema.RunConfig
    cls.__doc__ = "A run's config: SharedConfig's fields and one section per registered method."
    return cls


RunConfig = run_config_class()


def check_version(cfg: RunConfig, where: str) -> None:
    """Refuse a config written by a jepa-bench whose configs meant something else (never a silent mix)."""
    if cfg.version != CONFIG_VERSION:
        age = "an older" if cfg.version < CONFIG_VERSION else "another"
        raise BenchError(
            f"{where} was made by {age} jepa-bench (config version {cfg.version}, this one reads "
            f"{CONFIG_VERSION}: issues 11 and 12 changed how the methods train and how they are scored); "
            "train it again in a new folder (bench sweep gives new run ids) or use the older checkout"
        )
