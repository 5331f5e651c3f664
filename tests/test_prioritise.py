"""Prioritised screening: deterministic ranking, metrics known by hand, bad labelled files, stopping statistics."""

import gzip
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reviewkit.errors import ReviewkitError
from reviewkit.prioritise import (
    LabelledSetError,
    Prioritiser,
    RankAverage,
    RelevanceModel,
    asreview_priors,
    balanced_weights,
    draw_sample,
    read_labelled,
    sample_size_needed,
    screening_metrics,
    sheet_priority,
    simulate,
    simulate_file,
    stopping_statistics,
)

# A small labelled set whose includes and excludes share no content word, so any
# of the linear models separates them once it has one of each.
INCLUDE = "Ketamine infusion for alcohol use disorder: randomised trial {i} of craving and relapse"
EXCLUDE = "Gut microbiome of zebrafish larvae {i}: sequencing of intestinal bacteria"


def labelled(n_in=4, n_out=16):
    texts = [INCLUDE.format(i=i) for i in range(n_in)] + [EXCLUDE.format(i=i) for i in range(n_out)]
    labels = [1] * n_in + [0] * n_out
    order = np.random.default_rng(7).permutation(len(texts))  # includes not first in the file
    return [texts[i] for i in order], [labels[i] for i in order]


def write_csv(path, texts, labels):
    pd.DataFrame({"title": texts, "abstract": "", "label_included": labels}).to_csv(path, index=False)
    return path


# --- metrics ------------------------------------------------------------------------

def test_metrics_by_hand():
    # priors (left out), then 20 records with includes screened 1st, 2nd, 4th and 9th
    rest = [0] * 20
    for k in (1, 2, 4, 9):
        rest[k - 1] = 1
    m = screening_metrics([1, 0] + rest)
    assert m["records"] == 22 and m["included"] == 5
    # 10% of 20 = 2 screened: 2 of 4; 25% = 5: 3 of 4; 50% = 10: 4 of 4
    assert m["recall_at"] == {"0.1": 0.5, "0.25": 0.75, "0.5": 1.0}
    # 95% of 4 includes needs all 4, reached at the 9th record: 1 - 9/20 - 0.05
    assert m["wss95"] == pytest.approx(0.5)
    assert list(json.loads(json.dumps(m))) == ["records", "included", "recall_at", "wss95"]


def test_metrics_round_down_the_screened_share_and_up_the_includes_needed():
    # 30 records after the priors: 10% = 3, 25% = 7.5 -> 7, 50% = 15; 20 includes: 95% = 19
    rest = [1] * 19 + [0] * 10 + [1]
    m = screening_metrics([0, 1] + rest)
    assert m["recall_at"] == {"0.1": 3 / 20, "0.25": 7 / 20, "0.5": 15 / 20}
    assert m["wss95"] == pytest.approx(1 - 19 / 30 - 0.05)


def test_metrics_unknown_when_no_include_follows_the_priors():
    m = screening_metrics([1, 0, 0, 0, 0])
    assert m["recall_at"] == {"0.1": None, "0.25": None, "0.5": None} and m["wss95"] is None


# --- ranking --------------------------------------------------------------------------

def test_without_decisions_the_order_is_the_hint_then_input_order():
    texts = [f"record {w}" for w in ("alpha", "beta", "gamma", "delta", "epsilon")]
    hints = ["exclude", "", "check", "", "exclude"]
    none = [None] * 5
    assert Prioritiser(texts, hints).rank(none).tolist() == [1, 3, 2, 0, 4]
    assert Prioritiser(texts).rank(none).tolist() == [0, 1, 2, 3, 4]
    assert Prioritiser(["a single record"]).rank([None]).tolist() == [0]
    # decisions of one kind only teach nothing yet: hint order for the rest
    assert Prioritiser(texts, hints).rank([None, 0, None, None, None]).tolist() == [3, 2, 0, 4]


@pytest.mark.parametrize("model", [
    RelevanceModel(classifier="logistic"), RelevanceModel(classifier="nb"), RelevanceModel(classifier="svm"),
    RelevanceModel(min_df=2), RelevanceModel(char_ngrams=(3, 5)),
    RelevanceModel("nb", include_weight=1.2, strength=3.822, ngram_max=1, stop_words=True, max_df=1.0,
                   sublinear_tf=False),
    RankAverage((RelevanceModel(), RelevanceModel("nb", include_weight=1.2, strength=3.822))),
], ids=lambda m: m.name)
def test_ranking_learns_from_decisions_and_is_deterministic_for_a_seed(model):
    texts, labels = labelled()
    first_in, first_out = labels.index(1), labels.index(0)
    decided = [None] * len(texts)
    decided[first_in], decided[first_out] = 1, 0
    ranking = Prioritiser(texts, seed=3, model=model).rank(decided)
    assert sorted(ranking.tolist()) == [i for i in range(len(texts)) if i not in (first_in, first_out)]
    assert {labels[i] for i in ranking[:3]} == {1}  # the three other includes first
    again = Prioritiser(texts, seed=3, model=model).rank(decided)
    assert ranking.tolist() == again.tolist()
    last = Prioritiser(texts, seed=3, model=model)
    assert last.rank(decided, last=True).tolist() == ranking.tolist()  # the same, its features let go of
    with pytest.raises(ReviewkitError, match="last time"):
        last.rank(decided)


def test_model_options_change_the_features_as_documented():
    texts = ["ketamine craving trial", "ketamine relapse trial", "zebrafish gut"]
    assert RelevanceModel().features(texts).shape[1] > RelevanceModel(min_df=2).features(texts).shape[1]
    words = RelevanceModel(ngram_max=1, max_df=1.0).features(texts)
    assert words.shape[1] == 6
    with_chars = RelevanceModel(ngram_max=1, max_df=1.0, char_ngrams=(3, 3)).features(texts)
    assert with_chars.shape[1] > words.shape[1] and with_chars.shape[0] == 3
    assert RelevanceModel(min_df=2, char_ngrams=(3, 5)).features(["a single record"]).shape[0] == 1
    assert "min_df 2" in RelevanceModel(min_df=2).name and "char 3-5 grams" in RelevanceModel(char_ngrams=(3, 5)).name


def test_rank_average_scores_are_mean_ranks_and_need_two_models():
    texts, labels = labelled()
    pair = RankAverage((RelevanceModel(), RelevanceModel("nb")))
    features = pair.features(texts)
    y = np.array(labels[:10])
    score = pair.scores(features[np.arange(10)], y, features[np.arange(10, 20)], 0)
    # each model ranks the 10 pool rows 1..10 (ties share a mean rank), so the mean ranks sum to 55
    assert score.sum() == pytest.approx(55) and score.min() >= 1 and score.max() <= 10
    assert {labels[10 + i] for i in np.argsort(-score)[:sum(labels[10:])]} == {1}
    with pytest.raises(ReviewkitError, match="two models"):
        RankAverage((RelevanceModel(),))


def test_simulation_is_deterministic_for_a_seed_and_draws_one_prior_of_each_kind():
    texts, labels = labelled(6, 30)
    runs = [simulate(texts, labels, seed=s) for s in (5, 5, 6)]
    assert runs[0] == runs[1]
    for run in runs:
        assert sorted(run.order) == list(range(len(texts)))
        assert [labels[i] for i in run.order[:2]] == [1, 0]
    assert runs[0].order[:2] != runs[2].order[:2]  # another seed, other priors


def test_sheet_priority_ranks_undecided_rows_only():
    texts, labels = labelled()
    sheet = pd.DataFrame({"title": texts, "abstract": "", "suggestion": "", "final": ""})
    first_in, first_out = labels.index(1), labels.index(0)
    sheet.loc[first_in, "final"], sheet.loc[first_out, "final"] = "Include", "exclude"
    priority = sheet_priority(sheet)
    assert priority.isna().tolist() == [i in (first_in, first_out) for i in range(len(sheet))]
    assert sorted(priority.dropna()) == list(range(1, len(sheet) - 1))
    top = priority.sort_values().index[:3]
    assert [labels[i] for i in top] == [1, 1, 1]


# --- fidelity to ASReview LAB 3.0.8's default model (ELAS u4) and simulation --------------------

BENCH = Path(__file__).resolve().parent.parent / "bench" / "data" / "screening-benchmark"


def test_include_weights_are_asreviews_balancer_bit_for_bit():
    from sklearn.utils.class_weight import compute_sample_weight

    for y in (np.array([1, 0]), np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0]), np.r_[np.ones(37), np.zeros(701)]):
        # asreview/models/balancers.py, Balanced(ratio=9.8).compute_sample_weight, as written there
        theirs = compute_sample_weight({1: 1.0, 0: sum(y == 1) / (9.8 * sum(y == 0))}, y=y)
        theirs = theirs * (len(y) / sum(theirs))
        ours = balanced_weights(y, 9.8)
        assert np.array_equal(ours, theirs)
        assert ours[y == 1].sum() / ours[y == 0].sum() == pytest.approx(9.8)


def test_priors_are_the_ones_asreview_draws_for_the_seed():
    # the first two records of `asreview simulate van_der_Valk_2021.csv --seed S --prior-seed S
    # --n-prior-included 1 --n-prior-excluded 1` (ASReview LAB 3.0.8), record ids = 0-based rows
    labels = read_labelled(BENCH / "van_der_Valk_2021.csv.gz")["label_included"].tolist()
    asreview = {1: [443, 119], 2: [334, 721], 3: [637, 91], 4: [109, 411], 5: [300, 659]}
    assert {seed: asreview_priors(labels, seed) for seed in asreview} == asreview
    with pytest.raises(ReviewkitError, match="seed -1"):
        asreview_priors(labels, -1)


def test_first_records_screened_are_asreviews():
    # ASReview LAB 3.0.8, van_der_Valk_2021, seed 1: its first 14 records (priors, then one per retrain)
    asreview = [443, 119, 108, 337, 500, 164, 554, 370, 473, 73, 685, 352, 591, 232]
    table = read_labelled(BENCH / "van_der_Valk_2021.csv.gz")
    y = table["label_included"].to_numpy()
    prioritiser = Prioritiser((table["title"] + " " + table["abstract"]).tolist(), seed=1)
    stream, order = np.random.RandomState(1), asreview_priors(y, 1)
    known = np.full(y.size, np.nan)
    known[order] = y[order]
    while len(order) < len(asreview):
        top = int(prioritiser.rank(known, decided_order=order, random_state=stream)[0])
        order.append(top)
        known[top] = y[top]
    assert order == asreview


def test_training_rows_in_decision_order():
    texts, labels = labelled()
    decided = [None] * len(texts)
    first = [labels.index(1), labels.index(0), labels.index(0, labels.index(0) + 1)]
    for i in first:
        decided[i] = labels[i]
    p = Prioritiser(texts, seed=3)
    assert p.rank(decided, decided_order=sorted(first)).tolist() == p.rank(decided).tolist()
    assert sorted(p.rank(decided, decided_order=first[::-1]).tolist()) == sorted(p.rank(decided).tolist())
    with pytest.raises(ReviewkitError, match="each decided record once"):
        p.rank(decided, decided_order=first[:2])


def test_simulation_can_start_from_given_priors():
    texts, labels = labelled(6, 30)
    ins = [i for i, v in enumerate(labels) if v]
    outs = [i for i, v in enumerate(labels) if not v]
    run = simulate(texts, labels, seed=2, priors=[outs[3], ins[2]])
    assert run.order[:2] == (outs[3], ins[2]) and sorted(run.order) == list(range(len(texts)))
    assert run == simulate(texts, labels, seed=2, priors=[outs[3], ins[2]])
    # the seed's own draw is the same as giving its priors
    assert simulate(texts, labels, seed=2) == simulate(texts, labels, seed=2, priors=asreview_priors(labels, 2))
    three = simulate(texts, labels, seed=2, priors=[ins[0], outs[0], outs[1]])
    assert three.n_priors == 3 and three.metrics() == screening_metrics(three.labels, 3)
    for bad, message in (([ins[0], ins[1]], "at least one included and one excluded"),
                         ([ins[0], ins[0], outs[0]], "distinct record positions"),
                         ([ins[0], len(texts)], "distinct record positions"),
                         (list(range(len(texts))), "no record to screen")):
        with pytest.raises(ReviewkitError, match=message):
            simulate(texts, labels, priors=bad)


# --- simulation of a labelled file ----------------------------------------------------------

def test_simulate_file_answers_known_by_hand(tmp_path):
    texts, labels = labelled(4, 16)
    # priors: 1 include + 1 exclude; then 18 records, 3 includes, all ranked first by the model:
    # 10% of 18 = 1 screened -> 1/3; 25% = 4 -> 3/3; WSS@95 needs 3 includes -> 3 screened
    result = simulate_file(write_csv(tmp_path / "set.csv", texts, labels), seed=11)
    assert result == {"records": 20, "included": 4, "recall_at": {"0.1": 1 / 3, "0.25": 1.0, "0.5": 1.0},
                      "wss95": pytest.approx(1 - 3 / 18 - 0.05)}


def test_gzipped_sets_read_as_plain_ones(tmp_path):
    texts, labels = labelled()
    plain = write_csv(tmp_path / "set.csv", texts, labels)
    packed = tmp_path / "set.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_labelled(packed).equals(read_labelled(plain))


@pytest.mark.parametrize("content,message", [
    ("title,label_included\nA,1\n", "missing column(s) abstract"),
    ("title,abstract,label_included\nA,x,1\nB,y,maybe\n", "row 3, column label_included: 'maybe' is not 1"),
    ("title,abstract,label_included\nA,x,1\nB,y,\n", "row 3, column label_included: '' is not 1"),
    ("", "empty file"),
    ("title,abstract,label_included\n", "no records"),
    ("title,abstract,label_included\nA,x,1\nB,y,1\n", "at least one included (1) and one excluded (0)"),
])
def test_bad_labelled_sets_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LabelledSetError, match=re.escape(message)) as info:
        simulate_file(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_labelled_sets_are_bounded(tmp_path):
    texts, labels = labelled()
    path = write_csv(tmp_path / "set.csv", texts, labels)
    with pytest.raises(LabelledSetError, match="larger than 100 bytes"):
        read_labelled(path, max_bytes=100)
    with pytest.raises(LabelledSetError, match="more than 5 records"):
        read_labelled(path, max_records=5)
    bomb = tmp_path / "bomb.csv.gz"  # 50 MB of zeros in a few kB
    bomb.write_bytes(gzip.compress(b"title,abstract,label_included\n" + b"0" * 50_000_000))
    with pytest.raises(LabelledSetError, match="larger than 1,000,000 bytes"):
        read_labelled(bomb, max_bytes=1_000_000)


def test_unreadable_files_name_themselves(tmp_path):
    with pytest.raises(LabelledSetError, match="missing.csv: cannot read"):
        read_labelled(tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("title,abstract,label_included\nCaf\xe9,x,1\n".encode("latin-1"))
    with pytest.raises(LabelledSetError, match="not UTF-8"):
        read_labelled(latin)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(LabelledSetError, match="broken.gz: cannot read"):
        read_labelled(broken)


# --- stopping statistics -----------------------------------------------------------------

def _upper_by_hand(pool, sample, found, confidence=0.95):
    """Largest number of includes among ``pool`` records for which a random sample of
    ``sample`` shows ``found`` or fewer with probability above 1 - confidence."""
    def at_most(k):
        return sum(math.comb(k, j) * math.comb(pool - k, sample - j) for j in range(found + 1)) / math.comb(pool, sample)
    return max(k for k in range(found, pool - sample + found + 1) if at_most(k) > 1 - confidence)


def test_stopping_statistics_before_a_random_sample():
    s = stopping_statistics([1, 0, 1, 0, 0, 0], records=100)
    assert (s.screened, s.included, s.unscreened, s.since_last_include) == (6, 2, 94, 3)
    assert s.recall_estimate is None  # prioritised order alone cannot tell
    assert s.recall_lower == 2 / 96 and s.remaining_upper == 94  # certain: as if all 94 left were includes
    # 2 includes tolerate no missed one at 95% recall; a sample with no include must make one
    # remaining include unlikely: P(none in n of 94 | 1 include) = 1 - n/94 <= 0.05 -> n = 90
    assert s.sample_needed == 90
    assert "random sample of 90 of the 94 unscreened records" in s.advice


def test_stopping_statistics_from_a_random_sample():
    ranked = [1] * 19 + [0] * 31
    quiet = stopping_statistics(ranked, records=100, sample=[0] * 10)
    assert quiet.sample_size == 10 and quiet.remaining_estimate == 0 and quiet.recall_estimate == 1
    assert quiet.remaining_upper == _upper_by_hand(50, 10, 0)
    assert quiet.recall_lower == pytest.approx(19 / (19 + quiet.remaining_upper))
    assert quiet.recall_lower < 0.95 and "keep screening in priority order" in quiet.advice
    one = stopping_statistics(ranked, records=100, sample=[0] * 4 + [1] + [0] * 5)
    # 1 include in 10 of 50: 5 expected in the 50, 4 of them still unscreened
    assert one.remaining_estimate == pytest.approx(4) and one.recall_estimate == pytest.approx(20 / 24)
    assert one.remaining_upper == _upper_by_hand(50, 10, 1) - 1 and one.since_last_include == 5


def test_meeting_the_target_is_advice_and_unscreened_records_stay_unscreened():
    ranked = [1] * 40 + [0] * 460
    needed = sample_size_needed(500, 40)
    s = stopping_statistics(ranked, records=1000, sample=[0] * needed)
    assert s.recall_lower >= 0.95 and s.unscreened == 500 - needed
    assert "may decide to stop" in s.advice and f"{s.unscreened} records nobody screened stay unscreened" in s.advice
    smaller = stopping_statistics(ranked, records=1000, sample=[0] * (needed - 1))
    assert smaller.recall_lower < 0.95


def test_stopping_inputs_are_checked():
    assert sample_size_needed(3, 100) == 0  # even 3 missed includes keep recall above 95%
    with pytest.raises(ReviewkitError, match="'yes' is not 1"):
        stopping_statistics([1, "yes"], records=10)
    with pytest.raises(ReviewkitError, match="3 \\+ 0 decisions for 2 records"):
        stopping_statistics([1, 0, 0], records=2)
    assert stopping_statistics([0, 0], records=5).advice.startswith("No include yet")
    done = stopping_statistics([1, 0, 1], records=3)
    assert (done.recall_estimate, done.recall_lower, done.unscreened) == (1.0, 1.0, 0)
    nearly = stopping_statistics([1] * 100 + [0] * 10, records=112)  # 2 left: recall >= 100/102 whatever they are
    assert nearly.sample_needed == 0 and "Recall is at least 98.0% even if every unscreened" in nearly.advice


def test_random_samples_are_seeded_and_without_replacement():
    pool = list(range(100, 200))
    sample = draw_sample(pool, 30, seed=4)
    assert sample == draw_sample(pool, 30, seed=4) and len(set(sample)) == 30 and set(sample) <= set(pool)
    with pytest.raises(ReviewkitError, match="cannot draw 101"):
        draw_sample(pool, 101)


def test_screen_simulate_command(tmp_path, capsys):
    from reviewkit.cli import main

    texts, labels = labelled(4, 16)
    path = write_csv(tmp_path / "set.csv", texts, labels)
    assert main(["screen", "--simulate", str(path), "--seed", "11", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == simulate_file(path, seed=11)
    assert main(["screen", "--simulate", str(path), "--seed", "11"]) == 0
    assert "WSS@95: " in capsys.readouterr().out
    first_in, first_out = labels.index(1), labels.index(0)
    assert main(["screen", "--simulate", str(path), "--priors", str(first_out), str(first_in), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == simulate_file(path, priors=[first_out, first_in])
    assert main(["screen", "--simulate", str(path), "--priors", str(first_in), "--json"]) == 2
    assert "at least one included and one excluded" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("title,abstract,label_included\nA,x,1\nB,y,maybe\n", encoding="utf-8")
    assert main(["screen", "--simulate", str(tmp_path / "bad.csv"), "--json"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "'maybe' is not 1" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("ngram_max, max_df, min_df, chunk", [(2, 0.95, 1, 4096), (2, 0.5, 2, 3), (1, 1.0, 1, 2),
                                                               (2, 30, 0.01, 5)])
def test_word_tfidf_is_scikit_learns_matrix_to_the_bit(ngram_max, max_df, min_df, chunk):
    """The relevance model's fast word features: values, columns and their order in each row as
    TfidfVectorizer gives them, so rankings do not change."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from reviewkit.prioritise import word_tfidf

    rng = np.random.default_rng(3)
    words = ["a", "ab", "abc", "b", "ba", "Zeta", "zeta", "naïve", "ÉTAT", "x_1", "12", "co-op", "ketamine", "ß"]
    texts = ["", "a b", "ab ab ab abc", "!!", "Ketamine, ketamine: KETAMINE ab-abc"] + [
        " ".join(rng.choice(words, size=rng.integers(0, 30))) for _ in range(60)]
    expected = TfidfVectorizer(ngram_range=(1, ngram_max), sublinear_tf=True, max_df=max_df,
                               min_df=min_df).fit_transform(texts)
    got = word_tfidf(texts, ngram_max=ngram_max, sublinear_tf=True, max_df=max_df, min_df=min_df, chunk=chunk)
    assert got.shape == expected.shape
    for name in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(got, name), getattr(expected, name)), name
    assert got.indices.dtype == expected.indices.dtype


def test_word_tfidf_raises_where_scikit_learn_does():
    from reviewkit.prioritise import word_tfidf

    with pytest.raises(ValueError):
        word_tfidf(["", "a !"])
    with pytest.raises(ValueError):
        word_tfidf(["ab cd", "ab cd"], max_df=0.5)
