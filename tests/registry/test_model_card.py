"""The model card's content, rendered from the facts the registry holds (no server needed)."""

from __future__ import annotations

from ecgops.registry.model_card import render_model_card


def facts(**extra):
    base = {
        "model": "ecgops-ptb",
        "version": "3",
        "aliases": ["champion"],
        "task": "ptb",
        "class_names": ["healthy", "MI"],
        "run_id": "abc",
        "run_name": "lgbm-raw-beat",
        "generated": "2026-01-01T00:00:00+00:00",
        "split_scheme": "beat",
        "data_version": "0123456789abcdef",
        "git_commit": "deadbeef",
        "profile": "quick",
        "seed": "42",
        "select_metric": "val_balanced_accuracy",
        "select_value": "0.91",
        "metrics": [
            {"scheme": "beat", "part": "val", "balanced_accuracy": 0.91},
            {"scheme": "beat", "part": "test", "balanced_accuracy": 0.9, "auroc": 0.95},
            {"scheme": "patient", "part": "test", "balanced_accuracy": 0.7},
        ],
        "gate": {
            "gate.decision": "refused",
            "gate.role": "champion",
            "gate.champion.balanced_accuracy": "0.880000",
            "gate.challenger.balanced_accuracy": "0.500000",
        },
        "train_stats": {
            "n": 1500,
            "class_balance": [0.77, 0.23],
            "means": {"length": 120.4, "mean": 0.3, "std": 0.2},
        },
    }
    base.update(extra)
    return base


def test_card_states_data_split_metrics_use_and_limitations() -> None:
    card = render_model_card(facts())
    assert card.startswith("# Model card: ecgops-ptb version 3")
    assert "`0123456789abcdef`" in card and "git `deadbeef`" in card
    assert "| beat | test | - | 0.9000 | - | 0.9500 | - |" in card
    assert "| patient | test |" in card  # the other split scheme's numbers
    assert "Not a medical device" in card and "One lead per beat" in card and "125 Hz" in card
    assert "1500 beats; class balance healthy 77.0 %, MI 23.0 %" in card


def test_gate_line_reports_this_versions_own_numbers() -> None:
    card = render_model_card(facts())
    assert "this version as champion" in card and "balanced_accuracy 0.8800" in card
    assert "0.5000" not in card.split("Last promotion gate")[1].split("\n")[0]


def test_card_without_metrics_or_statistics() -> None:
    card = render_model_card(facts(metrics=[], gate={}, train_stats=None, task="mitbih",
                                   class_names=["N", "S", "V", "F", "Q"]))  # fmt: skip
    assert "_No metrics recorded._" in card and "## Training data" not in card
    assert "0 = N, 1 = S, 2 = V, 3 = F, 4 = Q" in card
