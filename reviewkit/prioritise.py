"""Prioritised screening: a relevance model ranks unscreened records, stopping statistics, simulation.

Ranking. Every record's title and abstract become TF-IDF features (fitted once
on all records: unsupervised, so unscreened records may shape the vocabulary);
a linear classifier from scikit-learn learns from the decisions so far and the
unscreened records are served most-likely-include first. With no decisions yet,
or decisions of one kind only (nothing to learn from), the order is the
rule-based hint (:func:`reviewkit.screening.suggest`: nothing stands out, then
``check``, then ``exclude``), else input order. Ties keep hint, then input order,
so a ranking is a pure function of the records, the decisions and the seed.

Which classifier: measured on four labelled reviews (``bench/bench_screening.py``,
``bench/results/screening.md``), not assumed. With these features, logistic
regression (unweighted, balanced, includes x10), balanced naive Bayes and a
linear SVM came within 0.01 of each other in mean WSS@95; naive Bayes unweighted
(0.10) or with alpha 0.1 (0.56) did worse, and dropping English stop words cost
0.01-0.015. :data:`DEFAULT_MODEL` is the linear SVM (``C`` 0.11, includes weighing 9.8
times the excludes: ASReview LAB 3's default "ELAS u4"): 0.002 below the best mean
(logistic regression, includes x10) at a sixth of its time, so it retrains after every
decision (about 20 ms a retrain for a thousand records on the benchmark machine).
A second round, retraining after every decision, with a rule fixed beforehand,
tried includes x5 and x20, dropping words in one record, character 3-5 grams,
ASReview's naive Bayes "ELAS u3" and a rank average (:class:`RankAverage`) of the
two ELAS models: includes x5 had the best mean (+0.006) but, like every candidate,
fell short of ASReview on at least one set, so the default stayed. The sets are
the ones the candidates were chosen on; there is no held-out set.

Stopping. :func:`stopping_statistics` reports the decisions since the last
include and, once a person has screened a simple random sample of the records
left, an estimated recall with a lower confidence bound (exact hypergeometric
bound, as in Callaghan & Müller-Hansen 2020, Systematic Reviews 9:273). It only
advises: nothing here stops screening or marks an unscreened record excluded.

Simulation. :func:`simulate` replays a labelled set as a person screening in the
model's order would; :func:`screening_metrics` gives recall after 10/25/50% and
WSS@95 the way ASReview's simulations report them; :func:`simulate_file` is
``reviewkit screen --simulate FILE.csv``.

Fidelity to ASReview LAB 3.0.8 (``asreview simulate`` with its default "ELAS u4",
read from its source). Alike: the text (title and abstract joined by a space),
the TF-IDF (word 1-2 grams, sublinear tf, min_df 1, max_df 0.95, no stop words,
l2 norm, fitted on all records), the classifier (``LinearSVC``, squared hinge,
``C`` 0.11, decision function), the balancer (:func:`balanced_weights`), the
ranking (highest score first, ties in record order), a retrain after every
decision. Made alike in the simulation: the priors (:func:`asreview_priors`),
the training rows in the order decided and the SVM's seed drawn at each fit from
``RandomState(seed)``. With these, on the four benchmark sets x 5 seeds the
screening order equals ASReview's record for record as far as reviewkit
simulates (``bench/results/screening.md``, paired part). Still different:
reviewkit stops retraining once 95% of the includes are found and half the
records screened (ASReview goes on to the last include), which changes no
reported metric; in the app the training rows are in record order and the seed is
fixed (a sheet does not keep the order of decisions).
"""

from __future__ import annotations

import gzip
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ReviewkitError
from .screening import DECISIONS

logger = logging.getLogger(__name__)

CLASSIFIERS = ("logistic", "nb", "svm")
# Rule-based hints (screening.suggest) in the order they are served before any model exists.
_HINT_TIERS = {"check": 1, "exclude": 2}

RECALL_FRACTIONS = ("0.1", "0.25", "0.5")
WSS_RECALL = Fraction(95, 100)
N_PRIORS = 2
MAX_BYTES = 256 * 2**20
MAX_RECORDS = 100_000
LABELLED_COLUMNS = ("title", "abstract", "label_included")


class LabelledSetError(ReviewkitError):
    """A labelled data set for :func:`simulate_file` cannot be used: ``where`` (file,
    row or column) and ``problem`` say why."""

    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = where, problem


# --- the relevance model ------------------------------------------------------------

@dataclass(frozen=True)
class RelevanceModel:
    """TF-IDF features and a linear classifier.

    Parameters
    ----------
    classifier : {"logistic", "nb", "svm"}
        ``LogisticRegression``, ``MultinomialNB`` or ``LinearSVC`` (scikit-learn).
    include_weight : float or None
        None: every decision weighs the same. ``r``: sample weights that make the
        includes together weigh ``r`` times the excludes together (1 is scikit-learn's
        ``class_weight="balanced"``; ASReview's "balanced" sampler uses ``r`` = 9.8).
    strength : float
        ``C`` of logistic regression and the SVM, ``alpha`` of naive Bayes.
    ngram_max : int
        Word n-grams from 1 to ``ngram_max``.
    stop_words : bool
        Drop scikit-learn's English stop words (measured: worse on the benchmark,
        which is why the default keeps them).
    min_df : int
        Drop words in fewer than ``min_df`` records.
    max_df : float
        Drop words in more than this share of the records (they tell nothing apart).
    sublinear_tf : bool
        ``1 + log(tf)`` instead of raw term counts.
    char_ngrams : tuple of int, optional
        ``(lo, hi)``: add TF-IDF of character n-grams within words (``char_wb``),
        lengths ``lo`` to ``hi``, beside the word features.
    """

    classifier: str = "svm"
    include_weight: float | None = 9.8
    strength: float = 0.11
    ngram_max: int = 2
    stop_words: bool = False
    min_df: int = 1
    max_df: float = 0.95
    sublinear_tf: bool = True
    char_ngrams: tuple[int, int] | None = None

    def __post_init__(self):
        if self.classifier not in CLASSIFIERS:
            raise ReviewkitError(f"unknown classifier {self.classifier!r}; classifiers: {', '.join(CLASSIFIERS)}")

    @property
    def name(self) -> str:
        weight = "unweighted" if self.include_weight is None else f"include weight {self.include_weight:g}"
        extra = [", English stop words dropped" if self.stop_words else "",
                 f", min_df {self.min_df}" if self.min_df != 1 else "",
                 f", max_df {self.max_df:g}" if self.max_df != 0.95 else "",
                 ", raw tf" if not self.sublinear_tf else "",
                 f", char {self.char_ngrams[0]}-{self.char_ngrams[1]} grams" if self.char_ngrams else ""]
        return f"{self.classifier} ({weight}, strength {self.strength:g}, 1-{self.ngram_max} grams{''.join(extra)})"

    def features(self, texts: Sequence[str]):
        """TF-IDF matrix (sparse, one row per text)."""
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer

        # A single record keeps all of its words (max_df would drop every one).
        few = len(texts) <= 1
        common: dict[str, Any] = dict(sublinear_tf=self.sublinear_tf, max_df=1.0 if few else self.max_df,
                      min_df=1 if few else self.min_df)
        words = (TfidfVectorizer(ngram_range=(1, self.ngram_max), **common,
                                 stop_words="english" if self.stop_words else None).fit_transform
                 if self.stop_words or self.ngram_max > 2 else
                 lambda t: word_tfidf(t, ngram_max=self.ngram_max, **common))  # the same matrix, faster
        vectorisers = [words]
        if self.char_ngrams:
            vectorisers.append(TfidfVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams, **common).fit_transform)
        try:
            parts = [v(texts) for v in vectorisers]
        except ValueError:  # scikit-learn's "empty vocabulary" (or min_df above max_df for tiny sets)
            raise ReviewkitError("no word to rank by: the titles and abstracts are empty, or every word is in "
                                 "nearly all of them") from None
        return parts[0] if len(parts) == 1 else hstack(parts, format="csr")

    def scores(self, train, y: np.ndarray, pool, seed: int | np.random.RandomState) -> np.ndarray:
        """Fit on ``train`` rows labelled ``y`` (1 include, 0 exclude); higher score = more likely include.

        ``seed``: the classifier's ``random_state`` (an int, or a ``numpy.random.RandomState``
        from which scikit-learn draws liblinear's seed at each fit, as ASReview's simulation does)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.naive_bayes import MultinomialNB
        from sklearn.svm import LinearSVC

        weight = None if self.include_weight is None else balanced_weights(y, self.include_weight)
        if self.classifier == "nb":
            model = MultinomialNB(alpha=self.strength).fit(train, y, sample_weight=weight)
            joint = model.predict_joint_log_proba(pool)  # log odds without saturating at probability 1
            return joint[:, 1] - joint[:, 0]
        if self.classifier == "logistic":
            model = LogisticRegression(C=self.strength, solver="liblinear", random_state=seed)
        else:
            model = LinearSVC(C=self.strength, random_state=seed)
        return model.fit(train, y, sample_weight=weight).decision_function(pool)


def balanced_weights(y: np.ndarray, ratio: float) -> np.ndarray:
    """Sample weights under which the includes together weigh ``ratio`` times the excludes
    together, with mean weight 1: ASReview LAB 3.0.8's ``Balanced`` balancer, in its arithmetic
    (include 1, exclude ``n_in / (ratio x n_out)``, then times ``N / sum``, summed in order)."""
    y = np.asarray(y)
    n_in, n_out = int(np.sum(y == 1)), int(np.sum(y == 0))
    weight = np.where(y == 1, 1.0, n_in / (ratio * n_out))
    # ASReview sums with Python's sum(): left to right, which cumsum's last element equals bit for bit
    return weight * (len(y) / np.cumsum(weight)[-1])


_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern
_CHUNK = 4096


def _token_ids(texts: Sequence[str], chunk: int) -> tuple[dict[str, int], list[np.ndarray], list[np.ndarray]]:
    """Every text's words (lower case, ``_TOKEN``) as integer ids, a chunk of texts at a time: the ids
    (flat) and each text's number of words per chunk, and the words by id."""
    vocab: dict[str, int] = {}
    setdefault = vocab.setdefault
    ids, lengths = [], []
    for start in range(0, len(texts), chunk):
        flat: list[str] = []
        counts = []
        for text in texts[start:start + chunk]:
            words = _TOKEN.findall(text.lower())
            counts.append(len(words))
            flat.extend(words)
        # pandas' hash table numbers the chunk's words; only its distinct words go through the dict
        codes, uniques = pd.factorize(np.array(flat, dtype=object))
        known = np.array([setdefault(u, len(vocab)) for u in uniques], dtype=np.int64)
        ids.append(known[codes] if flat else np.empty(0, np.int64))
        lengths.append(np.array(counts, dtype=np.int64))
    return vocab, ids, lengths


def word_tfidf(texts: Sequence[str], *, ngram_max: int = 2, sublinear_tf: bool = True, max_df: float = 1.0,
               min_df: float = 1, chunk: int = _CHUNK):
    """``TfidfVectorizer(ngram_range=(1, ngram_max), ...).fit_transform(texts)``, the same matrix to the bit
    (values, column numbers and their order in each row), in half the time and memory at 100,000 records.

    scikit-learn counts n-grams one text at a time through a dict of every n-gram's text and a Python
    list of every count (about 30 s and 700 MB for 85,000 abstracts). Here a text's words become integer
    ids, a bigram the pair of its words' ids, and counting is numpy's sorting. Its layout is
    scikit-learn's: columns in the order of the n-grams' text (which for words without spaces is the order
    of (first word, second word), a unigram before its bigrams), entries in a row in the order the n-grams
    first appear in the texts (unigrams of a text before its bigrams).

    Parameters
    ----------
    texts : sequence of str
    ngram_max : {1, 2}
    sublinear_tf : bool
    max_df, min_df : float or int
        As scikit-learn reads them (an int is a number of texts, a float a share of them).
    chunk : int
        Texts counted together (memory holds one chunk's n-grams).

    Returns
    -------
    scipy.sparse.csr_matrix

    Raises
    ------
    ValueError
        Where scikit-learn raises it: no word at all, or none left within ``min_df`` and ``max_df``.
    """
    from numbers import Integral

    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.preprocessing import normalize

    if ngram_max not in (1, 2):
        raise ValueError("word_tfidf counts unigrams and bigrams")
    vocab, ids, lengths = _token_ids(texts, chunk)
    base = len(vocab) + 1  # an n-gram's key: first id * base + (second id + 1, or 0 for a unigram)
    span = base * base
    if len(vocab) and (span * chunk >= 2**62 or span >= 2**62):
        raise ValueError("too many distinct words to count this way")  # never for text: V above 3e7
    seen = np.empty(0, np.int64)      # the n-gram keys met so far, sorted ...
    seen_id = np.empty(0, np.int64)   # ... and their numbers in order of first appearance
    n_terms, pointers, columns, counts, nnz = 0, [np.zeros(1, np.int64)], [], [], 0
    for part in range(len(ids)):
        words, lens = ids[part], lengths[part]
        ids[part] = np.empty(0, np.int64)  # a chunk's ids are not kept once counted
        docs = lens.size
        per_doc = lens + (np.maximum(lens - 1, 0) if ngram_max == 2 else 0)
        stream_end = np.cumsum(per_doc)
        stream_start, word_start = stream_end - per_doc, np.cumsum(lens) - lens
        total = int(stream_end[-1]) if docs else 0
        # each text's n-grams as scikit-learn's analyzer yields them: its words, then its bigrams
        key = np.empty(total, np.int64)
        word_doc = np.repeat(np.arange(docs), lens)
        key[stream_start[word_doc] + np.arange(words.size) - word_start[word_doc]] = words * base
        if ngram_max == 2 and words.size > 1:
            pair = np.flatnonzero(word_doc[1:] == word_doc[:-1])
            pd_ = word_doc[pair]
            key[stream_start[pd_] + lens[pd_] + pair - word_start[pd_]] = words[pair] * base + words[pair + 1] + 1
        doc = np.repeat(np.arange(docs), per_doc)
        order = np.argsort(doc * span + key, kind="stable")  # equal (text, n-gram): first occurrence first
        joint = doc[order] * span + key[order]
        head = np.ones(total, bool)
        head[1:] = joint[1:] != joint[:-1]
        starts = np.flatnonzero(head)
        entry_doc, entry_key = np.divmod(joint[starts], span)
        entry_pos, entry_count = order[starts], np.diff(np.append(starts, total))
        del order, joint, head, key, doc
        # n-grams new to this chunk, numbered in order of first appearance (text, then place in it)
        by_key = np.argsort(entry_key, kind="stable")
        sorted_keys = entry_key[by_key]
        first = np.ones(sorted_keys.size, bool)
        first[1:] = sorted_keys[1:] != sorted_keys[:-1]
        keys, key_doc, key_pos = sorted_keys[first], entry_doc[by_key][first], entry_pos[by_key][first]
        at = np.minimum(np.searchsorted(seen, keys), max(seen.size - 1, 0))
        new = ~(seen[at] == keys) if seen.size else np.ones(keys.size, bool)
        appear = np.lexsort((key_pos[new], key_doc[new]))
        new_id = np.empty(appear.size, np.int64)
        new_id[appear] = np.arange(n_terms, n_terms + appear.size)
        n_terms += appear.size
        where = np.searchsorted(seen, keys[new])
        seen, seen_id = np.insert(seen, where, keys[new]), np.insert(seen_id, where, new_id)
        entry_id = seen_id[np.searchsorted(seen, entry_key)]
        in_row = np.argsort(entry_doc * n_terms + entry_id)  # a row's entries by first appearance
        columns.append(entry_id[in_row].astype(np.int32))
        counts.append(entry_count[in_row].astype(np.int32))
        pointers.append(nnz + np.cumsum(np.bincount(entry_doc, minlength=docs)))
        nnz += entry_key.size
    if not n_terms:
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    first_app = np.concatenate(columns)
    del columns
    indptr = np.concatenate(pointers)
    # columns in the order of the n-grams' text: (rank of first word, 0 or rank of second word + 1)
    by_text = list(vocab)
    rank = np.empty(len(by_text), np.int64)
    rank[sorted(range(len(by_text)), key=by_text.__getitem__)] = np.arange(len(by_text))
    first_word, second = np.divmod(seen, base)
    text_order = rank[first_word] * base + np.where(second > 0, rank[np.maximum(second - 1, 0)] + 1, 0)
    column_of = np.empty(n_terms, np.int64)
    column_of[seen_id[np.argsort(text_order)]] = np.arange(n_terms)
    n_doc = len(texts)
    df = np.bincount(first_app, minlength=n_terms)
    high = max_df if isinstance(max_df, Integral) else max_df * n_doc
    low = min_df if isinstance(min_df, Integral) else min_df * n_doc
    if high < low:
        raise ValueError("max_df corresponds to < documents than min_df")
    keep = (df <= high) & (df >= low)
    values = np.concatenate(counts)
    del counts
    n_columns = n_terms
    if not keep.all():
        if not keep.any():
            raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
        kept = np.zeros(n_terms, bool)
        kept[column_of[keep]] = True
        column_of = np.where(keep, (np.cumsum(kept) - 1)[column_of], -1)
        entry = keep[first_app]
        indptr = np.concatenate([[0], np.cumsum(entry)])[indptr]
        first_app, values, n_columns = first_app[entry], values[entry], int(kept.sum())
    index = np.int32 if values.size < 2**31 - 1 else np.int64  # as scikit-learn chooses
    indices = column_of.astype(index)[first_app]
    del first_app
    matrix = csr_matrix((values.astype(np.float64), indices, indptr.astype(index)), shape=(n_doc, n_columns))
    del values, indices
    # TfidfTransformer.transform's steps, a slice at a time: its idf_[indices] would be a second copy
    # of every value (180 MB at 100,000 records) while the matrix is held
    idf = TfidfTransformer(norm="l2", use_idf=True, smooth_idf=True).fit(matrix).idf_
    data, index_of = matrix.data, matrix.indices
    for start in range(0, data.size, 2**20):
        part = data[start:start + 2**20]
        if sublinear_tf:
            np.log(part, part)
            part += 1.0
        part *= idf[index_of[start:start + 2**20]]
    return normalize(matrix, norm="l2", copy=False)


class _Features:
    """The feature matrices of several models, sliced by rows together."""

    def __init__(self, parts: Sequence):
        self.parts = tuple(parts)

    def __getitem__(self, rows) -> _Features:
        return _Features([p[rows] for p in self.parts])


@dataclass(frozen=True)
class RankAverage:
    """Several relevance models, each with its own features; a record's score is
    the mean of its ranks under each model (scores on different scales are not added).

    Parameters
    ----------
    models : tuple of RelevanceModel
    """

    models: tuple[RelevanceModel, ...]

    def __post_init__(self):
        if len(self.models) < 2:
            raise ReviewkitError("a rank average needs at least two models")

    @property
    def name(self) -> str:
        return "rank average of " + " and ".join(m.name for m in self.models)

    def features(self, texts: Sequence[str]) -> _Features:
        """One feature matrix per model."""
        return _Features([m.features(texts) for m in self.models])

    def scores(self, train: _Features, y: np.ndarray, pool: _Features,
               seed: int | np.random.RandomState) -> np.ndarray:
        """Mean rank (1 = least likely include) of each ``pool`` row over the models."""
        from scipy.stats import rankdata

        return np.mean([rankdata(m.scores(t, y, p, seed))
                        for m, t, p in zip(self.models, train.parts, pool.parts)], axis=0)


Model = RelevanceModel | RankAverage
DEFAULT_MODEL: Model = RelevanceModel()


def _hint_tier(hint) -> int:
    return _HINT_TIERS.get(str(hint or "").strip().lower(), 0)


class Prioritiser:
    """Ranks the unscreened records of one set as decisions arrive.

    The features are computed once; each :meth:`rank` retrains the classifier
    on the decisions it is given (about 20 ms for a thousand records with the
    default model, so an app may retrain after every decision).

    Parameters
    ----------
    texts : sequence of str
        Title and abstract of each record.
    hints : sequence of str, optional
        The rule-based hint of each record (``""``, ``"check"``, ``"exclude"``);
        None: input order until the model can learn.
    seed : int
        Seed of the classifier (the ranking is deterministic for a seed).
    model : RelevanceModel or RankAverage
    """

    def __init__(self, texts: Sequence[str], hints: Sequence[str] | None = None, *, seed: int = 0,
                 model: Model = DEFAULT_MODEL):
        texts = ["" if t is None else str(t) for t in texts]
        if not texts:
            raise ReviewkitError("no records to rank")
        if hints is not None and len(hints) != len(texts):
            raise ReviewkitError(f"{len(hints)} hints for {len(texts)} records")
        self.seed, self.model = seed, model
        self._tiers = np.array([_hint_tier(h) for h in hints] if hints is not None else [0] * len(texts))
        self._features = model.features(texts)

    def __len__(self) -> int:
        return len(self._tiers)

    def rank(self, labels: Sequence | np.ndarray, *, decided_order: Sequence[int] | None = None,
             random_state: np.random.RandomState | None = None, last: bool = False) -> np.ndarray:
        """Positions of the undecided records, the most likely include first.

        Parameters
        ----------
        labels : sequence
            One per record: 1 / True (include), 0 / False (exclude), None or NaN
            (not screened).
        decided_order : sequence of int, optional
            The decided records' positions in the order they were decided: the
            classifier sees its training rows in that order, as ASReview's does
            (liblinear's result can depend on it). None: in record order.
        random_state : numpy.random.RandomState, optional
            Instead of the seed: the classifier draws its seed from it at this fit.
        last : bool
            This prioritiser ranks no more: it lets go of its features once the decided and the
            undecided rows are sliced from them, so the classifier is fitted without a third copy
            (270 MB at 100,000 records). A later :meth:`rank` is an error.

        Returns
        -------
        numpy.ndarray
            Positions (0-based, into the records) of every record whose label is None.
        """
        if self._features is None:
            raise ReviewkitError("this prioritiser has ranked for the last time (rank(last=True))")
        known = _labels(labels, len(self))
        decided = ~np.isnan(known)
        pool = np.flatnonzero(~decided)
        rows = np.flatnonzero(decided)
        if decided_order is not None:
            ordered = np.asarray(decided_order, dtype=int)
            if ordered.size != rows.size or not np.array_equal(np.sort(ordered), rows):
                raise ReviewkitError("decided_order must list each decided record once")
            rows = ordered
        y = known[rows].astype(int)
        if last:
            features, self._features = self._features, None
        else:
            features = self._features
        if pool.size and 0 < y.sum() < y.size:
            seed = self.seed if random_state is None else random_state
            train, rest = features[rows], features[pool]
            del features  # with last=True, the only reference: freed before the classifier is fitted
            score = self.model.scores(train, y, rest, seed)
        else:  # nothing to learn from yet: hint order
            score = np.zeros(pool.size)
        return pool[np.lexsort((pool, self._tiers[pool], -score))]


def _labels(labels: Sequence | np.ndarray, n: int) -> np.ndarray:
    if len(labels) != n:
        raise ReviewkitError(f"{len(labels)} labels for {n} records")
    out = np.full(n, np.nan)
    for pos, value in enumerate(labels):
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            continue
        if value not in (0, 1):  # True/False compare equal to 1/0
            raise ReviewkitError(f"label {value!r} at position {pos} is not 1 (include), 0 (exclude) or None")
        out[pos] = int(value)
    return out


def sheet_priority(sheet: pd.DataFrame, column: str = "final", *, seed: int = 0,
                   model: Model = DEFAULT_MODEL) -> pd.Series:
    """A ``priority`` for each undecided row of a screening sheet: 1 is screened first.

    Parameters
    ----------
    sheet : pandas.DataFrame
        A screening sheet (:mod:`reviewkit.screening`): ``title``, ``abstract``,
        optionally ``suggestion``, and the decision ``column``.
    column : str
        Whose decisions the model learns from (``final``, ``reviewer1`` or ``reviewer2``).

    Returns
    -------
    pandas.Series
        Nullable integers aligned with ``sheet``; missing for rows already decided
        in ``column`` (include or exclude, any case).
    """
    missing = [c for c in ("title", "abstract", column) if c not in sheet.columns]
    if missing:
        raise ReviewkitError(f"screening sheet: missing column(s) {', '.join(missing)}")
    priority = pd.Series(pd.NA, index=sheet.index, dtype="Int64", name="priority")
    if sheet.empty:
        return priority
    texts = (sheet["title"].fillna("").astype(str) + " " + sheet["abstract"].fillna("").astype(str)).tolist()
    hints = sheet["suggestion"].tolist() if "suggestion" in sheet.columns else None
    decision = sheet[column].fillna("").astype(str).str.strip().str.lower()
    labels = [{"include": 1, "exclude": 0}.get(d) if d in DECISIONS else None for d in decision]
    prioritiser = Prioritiser(texts, hints, seed=seed, model=model)
    del texts  # not held while the classifier is fitted (110 MB at 100,000 records)
    order = prioritiser.rank(labels, last=True)
    priority.iloc[order] = np.arange(1, order.size + 1)
    return priority


def awaiting(sheet: pd.DataFrame, column: str = "final") -> np.ndarray:
    """Which rows of a screening sheet still await a decision in ``column``: current rows
    (``status`` blank) with no include or exclude there and, at full text, not marked not retrieved."""
    current = sheet["status"].fillna("").eq("") if "status" in sheet.columns else pd.Series(True, index=sheet.index)
    undecided = ~sheet[column].fillna("").astype(str).str.strip().str.lower().isin(DECISIONS)
    retrieved = sheet["retrieved"].fillna("").astype(str).str.strip().str.lower().ne("no") \
        if "retrieved" in sheet.columns else True
    return (current & undecided & retrieved).to_numpy(dtype=bool)


def with_priority(sheet: pd.DataFrame, *, seed: int = 0, model: Model = DEFAULT_MODEL) -> pd.DataFrame:
    """``sheet`` with its ``priority`` column filled in for spreadsheet screeners.

    The model learns from the ``final`` decisions of the sheet's current rows (those PRISMA counts)
    and ranks the rows still awaiting one (:func:`awaiting`): "1", "2", ... as text; blank for every
    other row. Deterministic for a seed; with no word to rank by, the priorities are left blank.
    """
    out = sheet.copy()
    out["priority"] = pd.Series("", index=out.index, dtype=object)  # a sheet is a table of plain strings
    waiting = awaiting(out)
    if not waiting.any():
        return out
    current = out["status"].fillna("").eq("").to_numpy() if "status" in out.columns else np.ones(len(out), bool)
    decided = out["final"].fillna("").astype(str).str.strip().str.lower().isin(DECISIONS).to_numpy()
    rows = out[waiting | (current & decided)]
    learned = set(out.loc[current & decided, "final"].astype(str).str.strip().str.lower())
    if learned != set(DECISIONS):  # nothing to learn from yet: hint order, without computing any feature
        hints = rows["suggestion"] if "suggestion" in rows.columns else pd.Series("", index=rows.index)
        tiers = np.array([_hint_tier(h) for h in hints])
        order = np.lexsort((np.arange(len(rows)), tiers))
        ranked = [rows.index[p] for p in order if waiting[out.index.get_loc(rows.index[p])]]
        out.loc[ranked, "priority"] = [str(n) for n in range(1, len(ranked) + 1)]
        return out
    try:
        ranks = sheet_priority(rows, seed=seed, model=model)
    except ReviewkitError as exc:
        logger.warning("screening priorities left blank: %s", exc)
        return out
    out.loc[rows.index, "priority"] = [("" if pd.isna(v) else str(int(v))) for v in ranks]
    return out


# --- stopping guidance --------------------------------------------------------------

STOPPING_METHOD = ("simple random sample of the records left after prioritised screening: remaining includes "
                   "= the sample's include proportion x the records it was drawn from; lower confidence bound "
                   "on recall from the exact hypergeometric upper bound on those includes "
                   "(Callaghan & Müller-Hansen 2020, Systematic Reviews 9:273)")


@dataclass(frozen=True)
class StoppingStatistics:
    """What a person needs to decide whether to stop screening; never a decision.

    ``records``: all records; ``screened``, ``included``: decisions so far (the
    random sample's included); ``unscreened``: records nobody has screened (they
    stay unscreened, never excluded); ``since_last_include``: decisions made since
    the last include; ``sample_size``, ``sample_included``: the random sample;
    ``remaining_estimate`` and ``remaining_upper``: includes estimated among the
    unscreened records (point, upper confidence bound); ``recall_estimate`` and
    ``recall_lower``: recall so far (point, lower bound). Before a random sample
    there is no estimate (None: unknown stays unknown) and the bounds are the
    certain ones, as if every unscreened record were an include; with nothing
    included yet, all four are None;
    ``sample_needed``: size of a random sample of the unscreened records that, if
    it holds no include, shows recall >= ``target_recall``; ``advice``: what a
    person should still do.
    """

    records: int
    screened: int
    included: int
    unscreened: int
    since_last_include: int
    sample_size: int
    sample_included: int
    remaining_estimate: float | None
    remaining_upper: int | None
    recall_estimate: float | None
    recall_lower: float | None
    sample_needed: int | None
    target_recall: float
    confidence: float
    method: str
    advice: str


def sample_size_needed(unscreened: int, included: int, target_recall: float = 0.95,
                       confidence: float = 0.95) -> int:
    """Smallest random sample of the ``unscreened`` records which, if it holds no
    include, shows recall >= ``target_recall`` at ``confidence``.

    Recall >= t holds while the unscreened records hold at most
    ``K = floor(included * (1 - t) / t)`` includes; the sample must be large enough
    that a set with ``K + 1`` includes would show none with probability <= 1 - confidence.
    """
    from scipy.stats import hypergeom

    t = Fraction(str(target_recall))
    tolerated = math.floor(included * (1 - t) / t)
    if unscreened == 0 or tolerated >= unscreened:
        return 0
    sizes = np.arange(1, unscreened + 1)
    none_found = hypergeom.pmf(0, unscreened, tolerated + 1, sizes)
    return int(sizes[np.argmax(none_found <= 1 - confidence)])


def stopping_statistics(labels_in_order: Sequence[int], records: int, sample: Sequence[int] = (), *,
                        target_recall: float = 0.95, confidence: float = 0.95) -> StoppingStatistics:
    """Stopping statistics after screening in priority order, optionally followed by a random sample.

    Parameters
    ----------
    labels_in_order : sequence of int
        Decisions in the order they were made (1 include, 0 exclude), priority order.
    records : int
        Records in the set (screened or not).
    sample : sequence of int
        Decisions on a simple random sample (:func:`draw_sample`) of the records
        still unscreened after ``labels_in_order``, screened after them; empty: none yet.
    target_recall, confidence : float

    Returns
    -------
    StoppingStatistics
    """
    from scipy.stats import hypergeom

    ranked, drawn = _binary(labels_in_order, "labels_in_order"), _binary(sample, "sample")
    pool = records - ranked.size  # the records the sample was drawn from
    if pool < drawn.size:
        raise ReviewkitError(f"{ranked.size} + {drawn.size} decisions for {records} records")
    every = np.concatenate([ranked, drawn])
    included, screened = int(every.sum()), every.size
    hits = np.flatnonzero(every)
    since = screened - 1 - int(hits[-1]) if hits.size else screened
    unscreened = records - screened
    needed = sample_size_needed(pool, int(ranked.sum()), target_recall, confidence)
    remaining = upper = recall = lower = None
    if drawn.size:
        x, n = int(drawn.sum()), drawn.size
        remaining = x / n * pool - x
        possible = np.arange(x, pool - (n - x) + 1)  # includes the pool can hold, given the sample
        upper = int(possible[hypergeom.cdf(x, pool, possible, n) > 1 - confidence].max()) - x
        if included:
            recall, lower = included / (included + remaining), included / (included + upper)
    elif included:  # certain, not estimated: as if every unscreened record were an include
        upper, lower = unscreened, included / (included + unscreened)
        if not unscreened:
            remaining, recall = 0, 1.0
    pct = f"{confidence:.0%}"
    if lower is None:  # nothing included yet
        advice = ("No include yet: keep screening in priority order; recall cannot be estimated before the "
                  "first include.")
    elif lower < target_recall and not drawn.size:
        decisions = "1 decision" if since == 1 else f"{since} decisions"
        advice = (f"{decisions} since the last include. Recall is not estimated yet: screen a random sample "
                  f"of {needed} of the {pool} unscreened records (draw_sample); if none of them is an include, "
                  f"recall is at least {target_recall:.0%} with {pct} confidence. Otherwise keep screening in "
                  "priority order.")
    elif lower >= target_recall:
        basis = (f"Estimated recall {recall:.1%} ({pct} lower bound {lower:.1%}, from a random sample of "
                 f"{drawn.size} records)" if drawn.size else
                 f"Recall is at least {lower:.1%} even if every unscreened record were an include")
        advice = (f"{basis}: the target of {target_recall:.0%} is met, so the team may decide to stop. The "
                  f"{unscreened} records nobody screened stay unscreened, not excluded, and PRISMA counts only "
                  "screened records.")
    else:
        advice = (f"Estimated recall {recall:.1%} ({pct} lower bound {lower:.1%}, from a random sample of {drawn.size}"
                  f" records) is below the target of {target_recall:.0%}: keep screening in priority order, then "
                  "screen a new random sample of what is left.")
    return StoppingStatistics(records, screened, included, unscreened, since, drawn.size, int(drawn.sum()),
                              remaining, upper, recall, lower, needed, target_recall, confidence,
                              STOPPING_METHOD, advice)


def _binary(values: Sequence[int], what: str) -> np.ndarray:
    out = np.asarray(list(values), dtype=object)
    bad = [v for v in out if v not in (0, 1)]
    if bad:
        raise ReviewkitError(f"{what}: {bad[0]!r} is not 1 (include) or 0 (exclude)")
    return out.astype(int)


def draw_sample(positions: Sequence[int], size: int, seed: int = 0) -> list[int]:
    """A simple random sample (without replacement) of ``size`` unscreened record positions."""
    if not 0 <= size <= len(positions):
        raise ReviewkitError(f"cannot draw {size} records from {len(positions)}")
    rng = np.random.default_rng(seed)
    return [positions[i] for i in rng.choice(len(positions), size=size, replace=False)]


# --- simulation -----------------------------------------------------------------------

@dataclass(frozen=True)
class Simulation:
    """A replayed screening: ``order`` holds record positions in screening order
    (the two priors first), ``labels`` their labels, ``retrains`` how often the model
    was fitted. Once the metrics are fixed (95% of includes found and half the
    records screened) the rest follows the last ranking without retraining."""

    order: tuple[int, ...]
    labels: tuple[int, ...]
    retrains: int
    n_priors: int = N_PRIORS

    def metrics(self) -> dict:
        return screening_metrics(self.labels, self.n_priors)


def asreview_priors(labels: Sequence[int], seed: int) -> list[int]:
    """One included and one excluded record, drawn as ASReview LAB 3.0.8 draws them for
    ``asreview simulate --prior-seed SEED --n-prior-included 1 --n-prior-excluded 1``:
    ``RandomState(seed).choice(includes, 1, replace=False)``, then the same with a fresh
    ``RandomState(seed)`` over the excludes (positions in file order)."""
    y = _binary(labels, "labels")
    if not 0 <= seed < 2**32:
        raise ReviewkitError(f"seed {seed} is not between 0 and 2**32 - 1")
    return [int(np.random.RandomState(seed).choice(np.flatnonzero(y == kind), 1, replace=False)[0])
            for kind in (1, 0)]


def simulate(texts: Sequence[str], labels: Sequence[int], *, seed: int = 0, model: Model = DEFAULT_MODEL,
             batch_fraction: float = 0.0, priors: Sequence[int] | None = None) -> Simulation:
    """Screen a labelled set as a person would in the model's order.

    As ASReview LAB 3.0.8's ``asreview simulate --seed SEED --prior-seed SEED
    --n-prior-included 1 --n-prior-excluded 1`` does: starts from one included
    and one excluded record drawn with ``seed`` (:func:`asreview_priors`), or
    from the given ``priors`` (record positions, 0-based, in the order they are
    screened; at least one include and one exclude, like ASReview's
    ``--prior-idx``); then, repeatedly: retrain on every decision so far (training
    rows in the order decided; the classifier's seed drawn at each fit from
    ``numpy.random.RandomState(seed)``, as ASReview's ``np.random.seed(SEED)``
    makes scikit-learn do), screen the top of the ranking. ``batch_fraction``
    batches retrains: after a retrain, ``max(1, floor(batch_fraction x decisions
    so far))`` records are screened before the next (0: retrain after every decision).
    """
    y = _binary(labels, "labels")
    if len(texts) != y.size:
        raise ReviewkitError(f"{y.size} labels for {len(texts)} records")
    if not 0 < y.sum() < y.size:
        raise ReviewkitError("a simulation needs at least one included and one excluded record")
    if not 0 <= seed < 2**32:  # RandomState's range
        raise ReviewkitError(f"seed {seed} is not between 0 and 2**32 - 1")
    if priors is None:
        priors = asreview_priors(labels, seed)
    else:
        priors = [int(p) for p in priors]
        if any(not 0 <= p < y.size for p in priors) or len(set(priors)) != len(priors):
            raise ReviewkitError(f"priors must be distinct record positions from 0 to {y.size - 1}")
        if not 0 < y[priors].sum() < len(priors):
            raise ReviewkitError("the priors must hold at least one included and one excluded record")
        if len(priors) == y.size:
            raise ReviewkitError("the priors leave no record to screen")
    n_priors = len(priors)
    prioritiser = Prioritiser(texts, seed=seed, model=model)
    stream = np.random.RandomState(seed)
    known = np.full(y.size, np.nan)
    known[priors] = y[priors]
    order, found, retrains = list(priors), 0, 0
    rest, positives = y.size - n_priors, int(y.sum()) - int(y[priors].sum())
    enough_found, enough_screened = math.ceil(WSS_RECALL * positives), math.ceil(Fraction(1, 2) * rest)
    while len(order) < y.size:
        ranking = prioritiser.rank(known, decided_order=order, random_state=stream)
        retrains += 1
        if found >= enough_found and len(order) - n_priors >= enough_screened:
            take = ranking  # no metric can change any more
        else:
            take = ranking[:max(1, math.floor(batch_fraction * len(order)))]
        known[take] = y[take]
        order.extend(int(p) for p in take)
        found += int(y[take].sum())
    logger.debug("simulated %d records with %d retrains", y.size, retrains)
    return Simulation(tuple(order), tuple(int(v) for v in y[order]), retrains, n_priors)


def screening_metrics(labels_in_order: Sequence[int], n_priors: int = N_PRIORS) -> dict:
    """Recall after 10, 25 and 50% screened and WSS@95 of a screening order.

    As ASReview's simulations report them, the ``n_priors`` prior records are
    left out: with ``N`` records and ``I`` includes after them, recall at fraction
    ``f`` is the includes among the first ``floor(f N)`` records over ``I``, and
    ``wss95 = 1 - k / N - 0.05`` where ``k`` is the fewest records screened with
    recall >= 0.95 (Cohen et al. 2006, with recall fixed at 0.95 as the issue and
    ASReview's baseline state it). ``records`` and ``included`` count the whole set.
    Unknown stays unknown: with no include after the priors, recall and WSS are None.

    Returns
    -------
    dict
        ``{"records", "included", "recall_at": {"0.1", "0.25", "0.5"}, "wss95"}``.
    """
    y = _binary(labels_in_order, "labels_in_order")
    rest = y[n_priors:]
    n, positives = rest.size, int(rest.sum())
    found = np.concatenate([[0], np.cumsum(rest)])  # found[k]: includes among the first k screened
    recall_at: dict[str, float | None] = {}
    for f in RECALL_FRACTIONS:
        k = math.floor(Fraction(f) * n)
        recall_at[f] = int(found[k]) / positives if positives else None
    wss95 = None
    if positives:
        k95 = int(np.searchsorted(found, math.ceil(WSS_RECALL * positives)))
        wss95 = 1 - k95 / n - float(1 - WSS_RECALL)
    return {"records": int(y.size), "included": int(y.sum()), "recall_at": recall_at, "wss95": wss95}


# --- labelled files ---------------------------------------------------------------------

def _excerpt(value, limit: int = 40) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return repr(text if len(text) <= limit else text[:limit] + "...")


def read_labelled(path: str | Path, *, max_bytes: int = MAX_BYTES, max_records: int = MAX_RECORDS) -> pd.DataFrame:
    """A labelled set (CSV, or gzipped CSV ending ``.gz``): ``title``, ``abstract``, ``label_included`` (0/1).

    Bounded: at most ``max_bytes`` of (decompressed) text and ``max_records`` rows.
    Any problem is one :class:`LabelledSetError` naming the file, and the row or column.

    Returns
    -------
    pandas.DataFrame
        ``title`` and ``abstract`` as strings, ``label_included`` as int.
    """
    import io

    path = Path(path)
    where = str(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except (OSError, EOFError) as exc:
        raise LabelledSetError(where, f"cannot read ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
    if len(raw) > max_bytes:
        raise LabelledSetError(where, f"larger than {max_bytes:,} bytes; split the set")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelledSetError(where, f"not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise LabelledSetError(where, "empty file")
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, nrows=max_records + 1)
    except (pd.errors.ParserError, ValueError) as exc:
        raise LabelledSetError(where, f"not a readable CSV ({_excerpt(exc, 80)})") from None
    missing = [c for c in LABELLED_COLUMNS if c not in table.columns]
    if missing:
        raise LabelledSetError(where, f"missing column(s) {', '.join(missing)} (a labelled set has "
                                      f"{', '.join(LABELLED_COLUMNS)})")
    if table.empty:
        raise LabelledSetError(where, "no records")
    if len(table) > max_records:
        raise LabelledSetError(where, f"more than {max_records:,} records")
    labels = table["label_included"].str.strip()
    bad = ~labels.isin(["0", "1"])
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise LabelledSetError(f"{where}, row {pos + 2}, column label_included",  # row 1 is the header
                               f"{_excerpt(table['label_included'].iat[pos])} is not 1 (included) or 0 (excluded)")
    return pd.DataFrame({"title": table["title"], "abstract": table["abstract"], "label_included": labels.astype(int)})


def simulate_file(path: str | Path, seed: int = 0, *, model: Model = DEFAULT_MODEL,
                  batch_fraction: float = 0.0, priors: Sequence[int] | None = None) -> dict:
    """``reviewkit screen --simulate FILE.csv [--seed N] [--priors I J ...] --json``: the metrics of
    one simulated screening. ``priors``: record positions (0-based data rows, as ASReview's
    ``--prior-idx``); None: drawn with the seed (:func:`simulate`).

    Returns
    -------
    dict
        ``{"records", "included", "recall_at": {"0.1", "0.25", "0.5"}, "wss95"}``
        (see :func:`screening_metrics`).
    """
    table = read_labelled(path)
    labels = table["label_included"]
    if labels.nunique() < 2:
        raise LabelledSetError(str(path), "a simulation needs at least one included (1) and one excluded (0) record")
    texts = (table["title"] + " " + table["abstract"]).tolist()
    return simulate(texts, labels.tolist(), seed=seed, model=model, batch_fraction=batch_fraction,
                    priors=priors).metrics()
