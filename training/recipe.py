"""The recipe of a training run: every setting, with the shipped defaults, and its validation.

    r = Recipe(seed=1, epochs=2)            # raises RecipeError on a bad setting
    pipeline.fit_and_export(rows, root, out, r)
    dataclasses.replace(r, val_fold=3)      # another recipe (validated again)

The manifest (`training.recipe`) and the crossval JSON record `dataclasses.asdict` of it.
A new setting is one field here, its check in `validate`, and one argument in
training/__main__.py's `_recipe_opts` (its dest is the field's name).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

ARCHS = ("ds_cnn", "crnn")
FA_STREAMS = ("background", "negatives")


class RecipeError(ValueError):
    """A bad setting: `setting` (the field's name) and what is wrong with it."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"{setting} {problem}")
        self.setting, self.problem = setting, problem


@dataclass(frozen=True)
class Recipe:
    # ---- model
    arch: str = "ds_cnn"  # training.models: ds_cnn or crnn
    width: int = 32  # channels of the first convolution (models.build)
    seed: int = 0  # augmentation mixtures, subsets, initialisation, batches
    # ---- training windows
    augment_data: bool = True  # mixtures of the clips (training.augment) as well as the clips
    max_per_class: int | None = 4000  # windows per target class (seeded subset; None: all)
    max_negatives: int | None = 8000  # windows of the negative class (seeded subset; None: all)
    aligned_negatives_first: bool = True  # fill the negative class with gate-placed windows first
    # ---- folds
    val_fold: int | None = 2  # fold that sets the thresholds (None: none)
    test_fold: int | None = None  # fold left out entirely
    train_on_val: bool = True  # train on the validation fold too (no early stopping)
    # ---- fit
    epochs: int = 15  # maximum epochs (cosine decay over all of them)
    batch_size: int = 64
    lr: float = 2e-3  # Adam, initial learning rate
    patience: int = 5  # early stopping (only with train_on_val False)
    stop_from_epoch: int = 8  # early stopping watches epochs after this one
    gain_jitter_db: float = 6.0  # random level offset of each window, +-dB
    mixup: float = 0.2  # in-batch mixup, lam ~ Beta(mixup, mixup); 0: off
    freq_shift: int = 2  # random shift of each window by up to this many mel bands; 0: off
    # ---- thresholds (training.thresholds.choose_thresholds)
    fa_per_hour: float = 1.0  # false alarms per hour on the validation fa_streams
    fa_streams: str = (
        "background"  # background (ambience clips) or negatives (every non-target clip)
    )
    negatives_fa_per_hour: float = 35.0  # and at the same time on every non-target clip; 0: off
    negatives_max_threshold: float = 0.9  # the second budget never raises a threshold above this
    # ---- export checks (training.quantize)
    max_int8_drop: float = 0.05  # window macro-F1 the int8 model may lose against float
    max_parity_rate: float = 0.005  # windows TFLite reference and tflite-micro may differ on
    enforce_budget: bool = True  # fail when over quantize.NODE_BUDGET

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise RecipeError naming the first bad setting."""

        def need(ok, setting, problem):
            if not ok:
                raise RecipeError(setting, f"{problem}, not {getattr(self, setting)!r}")

        need(self.arch in ARCHS, "arch", f"must be one of {', '.join(ARCHS)}")
        need(self.fa_streams in FA_STREAMS, "fa_streams", f"must be one of {', '.join(FA_STREAMS)}")
        for k in ("fa_per_hour", "negatives_fa_per_hour"):
            need(getattr(self, k) >= 0, k, "must be 0 or more false alarms per hour")
        for k in ("mixup", "freq_shift", "gain_jitter_db"):
            need(getattr(self, k) >= 0, k, "must be 0 (off) or more")
        for k in ("width", "epochs", "batch_size"):
            need(getattr(self, k) >= 1, k, "must be 1 or more")
        for k in ("max_per_class", "max_negatives"):
            need(
                getattr(self, k) is None or getattr(self, k) >= 1,
                k,
                "must be 1 or more (None: all)",
            )
        need(self.lr > 0, "lr", "must be above 0")
        need(
            self.patience >= 0 and self.stop_from_epoch >= 0,
            "patience" if self.patience < 0 else "stop_from_epoch",
            "must be 0 or more",
        )
        need(0 < self.negatives_max_threshold <= 1, "negatives_max_threshold", "must be in (0, 1]")
        for k in ("max_int8_drop", "max_parity_rate"):
            need(getattr(self, k) >= 0, k, "must be 0 or more")
        if self.test_fold is not None and self.test_fold == self.val_fold:
            raise RecipeError("test_fold", f"must differ from val_fold ({self.val_fold})")

    def to_json(self) -> dict:
        return asdict(self)
