"""The delegate's graph check and ``check_model``'s agree (docs/reliability.md).

Two implementations of one rule set: ``sbnn_runtime/graph.py`` (Python, behind
``check_model``) and ``tflite/delegate/graph_check.cc`` (the delegate's Prepare, before
it asks TFLite to partition, so that stock ``tf.lite.Interpreter`` + ``load_delegate()``
users who never call ``check_model`` are guarded too). They are checked against each
other on one corpus: mutated files of the reliability campaign (op order, strides,
shapes, indices, opcodes, option values and bytes, huge dimensions) on the four
end-to-end goldens, plus builtin window ops with options TFLite reads as zeros.

For every file:

- when the delegate refuses the graph, ``check_model`` refuses the file too, and when
  both name a graph rule, the message is the same (op, node index, tensor);
- when ``check_model`` names a graph rule the delegate also checks, the delegate names
  the same one, unless TFLite itself refused the file before applying the delegate.

The rules only Python can check (they need the model's inputs and outputs) are
listed in graph.py; their messages are exempt from the second point. The delegate runs
in a worker subprocess (``scripts/reliability/runner.py``), so a crash is an outcome
(it fails the test), not a dead pytest.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "reliability"))

import campaign  # noqa: E402
import mutate as mu  # noqa: E402

from sbnn_keras import runtime  # noqa: E402

MARK = "the .tflite graph is inconsistent: "
CLASSES = ("op_order", "strides", "shapes", "indices", "opcodes", "option_values", "option_bytes",
           "huge_dims")
PER_CLASS = 12  # per class and model: 4 x 8 x 12 = 384 files
PYTHON_ONLY = ("writes the model input", "which no op writes", "is written by no op")


def graph_message(text: str | None) -> str | None:
    if not text or MARK not in text:
        return None
    return text.split(MARK, 1)[1].split("\n", 1)[0]


def _builtin_window_cases(bases) -> dict:
    """Builtin convs/pools whose options TFLite reads as zeros (none, or another op's
    type) or with an unknown padding: the rules read their options as TFLite does."""
    out = {}
    for name, data in bases.items():
        m0 = mu.read(data)
        ops = m0.subgraphs[0].operators
        for i, op in enumerate(ops):
            if mu.op_name(m0, op) not in ("builtin_3", "builtin_17", "builtin_1", "builtin_4"):
                continue

            def drop(m, i=i):
                m.subgraphs[0].operators[i].builtinOptionsType = 0
                m.subgraphs[0].operators[i].builtinOptions = None

            def pad7(m, i=i):
                m.subgraphs[0].operators[i].builtinOptions.padding = 7

            out[f"{name}.op{i}_no_options"] = campaign._edit(data, drop)
            out[f"{name}.op{i}_padding_7"] = campaign._edit(data, pad7)
            break
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("agreement")
    bases = campaign.base_models()
    files = {}
    for model, data in bases.items():
        per = campaign.cases_for(data, random.Random(f"agree-{model}"))
        for cls in CLASSES:
            chosen = per.get(cls, [])
            chosen = random.Random(f"agree-{model}-{cls}").sample(chosen, min(PER_CLASS, len(chosen)))
            for name, make, _ in chosen:
                try:
                    files[f"{model}.{cls}.{name}"] = make()
                except Exception:  # noqa: BLE001 - an edit the object API cannot write
                    continue
    files.update(_builtin_window_cases(bases))
    paths = {}
    for key, data in files.items():
        paths[key] = d / f"{key}.tflite"
        paths[key].write_bytes(data)
    return paths


@pytest.fixture(scope="module")
def verdicts(corpus, tmp_path_factory):
    import runner

    jobs = [{"id": i, "file": str(p), "path": "tf_raw", "action": "construct", "case": key}
            for i, (key, p) in enumerate(sorted(corpus.items()))]
    log = tmp_path_factory.mktemp("agreement-worker") / "worker.log"
    native = {r["case"]: r for r in runner.run_jobs(jobs, str(log), timeout=120, confirm=False)}
    out = {}
    for key, p in corpus.items():
        try:
            runtime.check_model(p.read_bytes())
            py = None
        except ValueError as err:
            py = str(err)
        out[key] = (py, native[key])
    return out


def test_the_delegate_and_check_model_refuse_the_same_graphs(verdicts):
    same = exempt = tflite_first = 0
    problems = []
    for key, (py, nat) in sorted(verdicts.items()):
        if nat["outcome"] not in ("ok", "error"):
            problems.append(f"{key}: the delegate path ended in {nat['outcome']}: {nat['detail'][:300]}")
            continue
        p, n = graph_message(py), graph_message(nat["detail"])
        if n is not None:
            if py is None:
                problems.append(f"{key}: only the delegate refuses: {n}")
            elif p is not None and p != n and not any(s in p for s in PYTHON_ONLY):
                problems.append(f"{key}: different messages:\n  python:   {p}\n  delegate: {n}")
            elif p == n:
                same += 1
            else:
                exempt += 1
        elif p is not None and not any(s in p for s in PYTHON_ONLY):
            if "sbnn delegate" in nat["detail"] or nat["outcome"] == "ok":
                problems.append(f"{key}: only check_model names the graph rule: {p}\n"
                                f"  delegate path: {nat['outcome']} {nat['detail'][:300]}")
            else:
                tflite_first += 1
    print(f"\n{len(verdicts)} files: same graph message {same}, Python-only rule first {exempt}, "
          f"TFLite refused before the delegate {tflite_first}")
    assert not problems, "\n".join(problems[:20])
    assert same >= 20  # the corpus exercises the shared rules


@pytest.mark.parametrize("rule", ["reads its own output", "(ops out of order)", "is declared",
                                  "has stride height 0", "unknown padding"])
def test_the_corpus_covers_each_shared_rule(verdicts, rule):
    assert any(rule in (graph_message(nat["detail"]) or "") for _, nat in verdicts.values())
