"""tools.gate_eval on the shipped test clips (../shared is not needed): the gate alone, the
node with the shipped model in the loop (habituation), held-out fold models, and the CLI's
errors."""

import csv
import shutil
from pathlib import Path

import pytest

from tools import gate_eval as gate_eval_cmd
from tools.node import core, model
from tools.validate import gate_eval

AUDIO = Path(__file__).parent / "audio"


class Rejector:
    """A model that rejects every window with confidence: the node habituates at once."""

    n_classes = 2

    def node(self, **kw):
        return core.Node(lambda w, f: [0, 255], 2, thresholds=[0.5, None], **kw)


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """A small CSV in gate_eval's format: impulsive clips and background clips, two folds; the
    door knock is filed as a crackling-fire background (impulsive, for --mixed)."""
    d = tmp_path_factory.mktemp("ge")
    out = []
    for i, (name, label, src) in enumerate(
        [
            ("gunshot_1.wav", "gunshot", "gunshot"),
            ("gunshot_2.wav", "gunshot", "gunshot"),
            ("glass_breaking_1.wav", "glass_breaking", "glass"),
            ("fireworks_explosion_1.wav", "fireworks_explosion", "explosion"),
            ("background_rain_1.wav", "background", "rain"),
            ("background_engine_1.wav", "background", "engine"),
            ("other_door_wood_knock_1.wav", "background", "Fire crackling"),
        ]
    ):
        shutil.copy(AUDIO / name, d / name)
        out.append(
            {
                "path": name,
                "label": label,
                "source_label": src,
                "fold": str(1 + i % 2),
                "corpus": "test",
            }
        )
    with open(d / "all_metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0]))
        w.writeheader()
        w.writerows(out)
    return d, out


def test_gate_alone_and_with_the_model(rows):
    root, r = rows
    g = gate_eval.evaluate(root, r, progress=False)
    m = gate_eval.evaluate(root, r, progress=False, model=model.load())
    rej = gate_eval.evaluate(root, r, progress=False, model=Rejector())
    for res in (g, m, rej):
        assert res["impulsive_clips"] == 4 and res["background_clips"] == 3
        assert 0.0 <= res["gate_duty_cycle_background"] <= 1.0
        assert set(res["per_source"]) == {"rain", "engine", "fire_crackling"}
    assert g["gate_recall_impulsive"] == 1.0
    # habituation only ever removes windows: never more duty with the classifier in the loop
    assert m["gate_duty_cycle_background"] <= g["gate_duty_cycle_background"]
    # the knocks (filed as a fire) heard a second time, after a confident rejection: no window
    knock_g = g["per_source"]["fire_crackling"]["duty"]
    assert knock_g > 0.5 and rej["per_source"]["fire_crackling"]["duty"] < knock_g - 0.1
    # held-out models: clips of a fold without a model are skipped
    ho = gate_eval.evaluate(root, r, progress=False, fold_models={"1": model.load()})
    assert ho["impulsive_clips"] + ho["background_clips"] == sum(x["fold"] == "1" for x in r)


def test_mixed_recall_counts_events_inside_an_impulsive_background(rows):
    root, r = rows
    res = gate_eval.mixed_recall(root, r, model=model.load(), snrs_db=(20.0,), progress=False)
    # the "fire" (the knock) is in fold 1 with gunshot_1 and the glass clip
    assert res["clips"] == 2 and res["backgrounds"] == list(gate_eval.IMPULSIVE_BACKGROUNDS)
    assert res["20"] == 1.0  # 20 dB over the background: always heard


def test_cli_errors(rows, tmp_path, capsys):
    root, _ = rows
    assert gate_eval_cmd.main(["--root", str(tmp_path)]) == 2  # no CSV there
    assert "no such file" in capsys.readouterr().err
    assert gate_eval_cmd.main(["--root", str(root), "--fold-models", str(tmp_path)]) == 2
    assert "fold<k>/manifest.json" in capsys.readouterr().err
    assert gate_eval_cmd.main(["--root", str(root), "--model", str(tmp_path / "none")]) == 2
    assert gate_eval_cmd.main(["--root", str(root), "--mixed"]) == 2
    assert "--mixed needs" in capsys.readouterr().err
