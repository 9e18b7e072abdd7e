"""The prepare stage end to end in a temporary project directory."""

import json

import pytest

from pipeline.prepare import LeakageError, main, split_validation
from pipeline.records import DataError, LabelledRow

SEED = (
    "Import curbs: Beijing has again halted shipments of Japanese scallops, "
    "a move widely read as punishment aimed at Tokyo."
)
NEAR_COPY = (
    "IMPORT CURBS - Beijing again halted shipments of Japanese scallops, "
    "a move widely read as punishment aimed at Tokyo!"
)
SENTENCES = [
    "Takaichi told parliament a blockade of Taiwan could threaten Japan's survival.",
    "Beijing summoned the Japanese ambassador late on Thursday evening.",
    "Tokyo said it would not withdraw the prime minister's answer.",
    "Chinese state media called the remarks a dangerous provocation.",
    "The Chief Cabinet Secretary described the consul-general's post as inappropriate.",
    "China advised its citizens to avoid travel to Japan for now.",
    "Japanese officials asked Washington for a clearer statement of support.",
    "The coast guard reported four Chinese vessels near the Senkaku Islands.",
    "Japan's defence minister promised calm and steady surveillance.",
    "A foreign ministry spokesperson in Beijing demanded a full retraction.",
    "Takaichi repeated that her government's position had not changed.",
    "Chinese airlines offered free refunds on flights bound for Osaka.",
]
PARAMS = """\
prepare:
  validation_fraction: 0.34
  seed: {seed}
  leakage_jaccard: 0.6
  phrase_leak_words: 7
  template_overlap: 0.7
  consistency_jaccard: 0.6
  profile:
    quote: {{target: 0.34, tolerance: 0.1}}
  allow_skipping_invalid_rows: {skip}
"""


def line(i: int, sentence: str, actor: str, stance: str) -> str:
    row = {"id": f"c{i}-{actor}", "doc": f"c{i}", "sentence": sentence, "actor": actor}
    return json.dumps({**row, "stance": stance}) + "\n"


def corpus_lines(extra: str = "") -> str:
    rows = [line(i, s, "japan", "supportive") for i, s in enumerate(SENTENCES)]
    rows += [line(i, s, "china", "hostile") for i, s in enumerate(SENTENCES)]
    return "".join(rows) + extra


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "part_a.jsonl").write_text(corpus_lines(), encoding="utf-8")
    (tmp_path / "seeds.jsonl").write_text(line(0, SEED, "china", "hostile"), encoding="utf-8")
    write_params(tmp_path)
    return tmp_path


def write_params(root, seed: int = 13, skip: str = "false") -> None:
    (root / "params.yaml").write_text(PARAMS.format(seed=seed, skip=skip), encoding="utf-8")


def run(out: str) -> None:
    main(["--corpus-dir", "corpus", "--seed-labels", "seeds.jsonl", "--out-dir", out])


def read(path) -> list[dict]:
    return [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]


def test_writes_splits_and_report(project):
    run("out")
    train, validation, test = (
        read(project / "out" / f"{n}.jsonl") for n in ("train", "validation", "test")
    )
    report = json.loads((project / "out" / "report.json").read_text(encoding="utf-8"))
    assert len(train) + len(validation) == 2 * len(SENTENCES)
    assert train and validation
    assert [r["sentence"] for r in test] == [SEED]
    assert report["train"]["rows"] == len(train)
    assert report["validation"]["rows"] == len(validation)
    assert report["checks"]["seed_leaks"] == 0
    profile = json.loads((project / "out" / "profile.json").read_text(encoding="utf-8"))
    assert profile["corpus"]["sentences"] == len(SENTENCES)
    assert profile["corpus"]["quote"] == 0.0  # no sentence quotes anyone
    assert profile["out_of_tolerance"] == 1  # quote: 0.0 is not within 0.34 +/- 0.1


def test_no_sentence_on_both_sides(project):
    run("out")
    train = {r["sentence"] for r in read(project / "out" / "train.jsonl")}
    validation = {r["sentence"] for r in read(project / "out" / "validation.jsonl")}
    assert train.isdisjoint(validation)
    assert train | validation == set(SENTENCES)


def test_same_seed_gives_the_same_split(project):
    run("first")
    run("second")
    for name in ("train.jsonl", "validation.jsonl"):
        assert (project / "first" / name).read_bytes() == (project / "second" / name).read_bytes()


def test_near_copy_of_a_seed_sentence_fails_the_stage(project):
    (project / "corpus" / "part_b.jsonl").write_text(line(99, NEAR_COPY, "china", "hostile"))
    with pytest.raises(LeakageError) as caught:
        run("out")
    assert NEAR_COPY in str(caught.value) and SEED in str(caught.value)
    assert not (project / "out").exists()


def test_invalid_row_fails_unless_skipping_is_allowed(project):
    bad = '{"id": "c50", "doc": "c50", "sentence": "Seoul spoke.", "actor": "korea"}\n'
    (project / "corpus" / "part_a.jsonl").write_text(corpus_lines(bad), encoding="utf-8")
    with pytest.raises(DataError, match=r"part_a\.jsonl:25:"):
        run("out")
    write_params(project, skip="true")
    run("out")
    sentences = {r["sentence"] for r in read(project / "out" / "train.jsonl")}
    sentences |= {r["sentence"] for r in read(project / "out" / "validation.jsonl")}
    assert sentences == set(SENTENCES)


def test_corrupt_corpus_names_every_problem_and_writes_nothing(project):
    run("out")  # a good run first: its outs must survive the failed one untouched
    before = {p.name: p.read_bytes() for p in (project / "out").iterdir()}
    part_a = project / "corpus" / "part_a.jsonl"
    text = corpus_lines().splitlines(keepends=True)
    text[2] = text[2][: len(text[2]) // 2] + "\n"  # line 3: cut in half
    text[4] = text[4].replace('"doc": "c4"', '"doc": 4')  # line 5: wrong field type
    text[6] = text[6].replace('"c6-japan"', '"c0-japan"')  # line 7: id of line 1
    part_a.write_text("".join(text), encoding="utf-8")
    part_b = project / "corpus" / "part_b.jsonl"
    part_b.write_text(line(0, "Seoul kept quiet.", "china", "hostile")[:-20], encoding="utf-8")
    seeds = project / "seeds.jsonl"
    seeds.write_text(seeds.read_text() + '{"id": "s1", "actor": "china"}\n', encoding="utf-8")

    with pytest.raises(DataError) as caught:
        run("out")
    message = str(caught.value)
    expected = {
        f"corpus/{part_a.name}:3: invalid JSON",
        f"corpus/{part_a.name}:5: field 'doc': Input should be a valid string",
        f"corpus/{part_a.name}:7: duplicate id 'c0-japan' (first at corpus/part_a.jsonl:1)",
        f"corpus/{part_b.name}:1: invalid JSON",
        "seeds.jsonl:2: field 'doc': Field required",
    }
    assert message.startswith(f"{len(caught.value.problems)} problem(s)")
    for problem in expected:
        assert problem in message
    assert len(caught.value.problems) == len(expected)
    assert "seeds.jsonl:2: field 'doc': Field required; field 'sentence': Field required" in message
    assert {p.name: p.read_bytes() for p in (project / "out").iterdir()} == before
    with pytest.raises(DataError):
        run("fresh")
    assert not (project / "fresh").exists()


def test_copied_seed_clause_fails_the_stage_and_the_allowlist_admits_set_phrases(project):
    copied = (
        "Trade press noted that Beijing has again halted shipments of Japanese scallops on Monday."
    )
    part = project / "corpus" / "part_a.jsonl"
    part.write_text(corpus_lines(line(99, copied, "china", "hostile")), encoding="utf-8")
    with pytest.raises(LeakageError, match="copy a run of 7 words") as caught:
        run("out")
    assert copied in str(caught.value)

    (project / "allow.txt").write_text(
        "# set phrases\nBeijing has again halted shipments of Japanese scallops\n", encoding="utf-8"
    )
    main(["--corpus-dir", "corpus", "--seed-labels", "seeds.jsonl", "--out-dir", "out",
          "--leakage-allowlist", "allow.txt"])  # fmt: skip
    assert (project / "out" / "train.jsonl").exists()


def test_disagreeing_near_duplicates_fail_unless_allowlisted_with_a_reason(project):
    twin = "Her government's position had not changed, Takaichi repeated."
    part = project / "corpus" / "part_a.jsonl"
    part.write_text(corpus_lines(line(99, twin, "japan", "hedging")), encoding="utf-8")
    with pytest.raises(LeakageError, match="label the same actor differently") as caught:
        run("out")
    assert "c10-japan supportive vs c99-japan hedging" in str(caught.value)
    assert not (project / "out").exists()

    reason = "c99-japan c10-japan reported as a calming formula\n"
    (project / "allow.txt").write_text(reason, encoding="utf-8")
    main(["--corpus-dir", "corpus", "--seed-labels", "seeds.jsonl", "--out-dir", "out",
          "--consistency-allowlist", "allow.txt"])  # fmt: skip
    report = json.loads((project / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["checks"]["label_conflicts_allowlisted"] == 1


def labelled(i: int, sentence: str, actor: str, stance: str) -> LabelledRow:
    return LabelledRow(id=f"c{i}-{actor}", doc=f"c{i}", sentence=sentence, actor=actor,
                       stance=stance)  # fmt: skip


def sides(train, validation) -> tuple[set[str], set[str]]:
    return {r.id for r in train}, {r.id for r in validation}


ROWS = [labelled(i, f"Sentence number {i} about the dispute.", "japan", "neutral")
        for i in range(400)]  # fmt: skip


def test_split_fraction_and_seed() -> None:
    train, validation = split_validation(ROWS, 0.15, seed=13)

    assert len(train) + len(validation) == len(ROWS)
    assert 0.10 < len(validation) / len(ROWS) < 0.20
    assert sides(*split_validation(ROWS, 0.15, seed=14)) != sides(train, validation)


def test_a_label_change_or_new_rows_move_no_row_between_the_sides() -> None:
    before = sides(*split_validation(ROWS, 0.15, seed=13))
    relabelled = [r.model_copy(update={"stance": "hostile"}) if i % 3 else r
                  for i, r in enumerate(ROWS)]  # fmt: skip
    extra = [labelled(1000 + i, f"A new sentence {i}.", "china", "hostile") for i in range(50)]

    assert sides(*split_validation(relabelled, 0.15, seed=13)) == before
    train, validation = sides(*split_validation(ROWS + extra, 0.15, seed=13))
    assert before[0] <= train and before[1] <= validation


def test_an_empty_side_is_an_error_naming_the_keys() -> None:
    with pytest.raises(ValueError, match="prepare.validation_fraction .* validation split empty"):
        split_validation(ROWS[:2], 0.01, seed=13)
