"""Terms for the lexical (BM25) side of hybrid search, for English and Vietnamese text.

Pure functions, no I/O. A text becomes a bag of terms:

- Unicode NFC, case-folded words (``\\w+``); an identifier such as ``ledger_break`` also yields its
  parts, so "ledger break" and `ledger_break` meet.
- English: a light suffix stemmer (``refunds``/``refunded``/``refunding`` → ``refund``) and a short
  stop-word list. Vietnamese syllables never end in ``s``, ``ed`` or ``ing``, so the stemmer leaves
  them alone.
- Vietnamese: every syllable, every pair of neighbouring syllables (most Vietnamese words are two
  syllables: ``hoàn_tiền``, ``giao_hàng``), and the diacritics-folded form of both
  (``hoan``, ``hoan_tien``), so a question typed without accents ("hoan tien bao lau") still meets
  the accented text. Pairs are built for English too (``partial_refund``).

A term is mapped to a sparse-vector index by CRC-32 (a stable 32-bit hash: the same term gets the
same index in every process). Document-side values are BM25's saturated term frequency; the
store multiplies them by IDF at query time (Qdrant's ``Modifier.IDF``), which completes BM25.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator

#: Changing how terms are made changes every sparse vector: bump to re-index everything.
TOKENIZER_VERSION = "terms-v1"

#: BM25 parameters. ``AVG_TERMS`` stands for the average chunk length in words: a constant, so a
#: chunk's vector does not depend on the rest of the corpus and incremental ingestion stays exact.
K1 = 1.2
B = 0.75
AVG_TERMS = 140.0

_WORD = re.compile(r"\w+")
#: Identifier-like words: snake_case, camelCase/PascalCase with an inner capital, letters with digits.
_IDENTIFIER = re.compile(r"\b(?:\w+_\w+|[A-Za-z]*[a-z][A-Z]\w*|[A-Za-z]+\d\w*)\b")

#: Query weights of accent-free forms of accented words, and of technical identifiers.
FOLDED_QUERY_WEIGHT = 0.5
IDENTIFIER_QUERY_WEIGHT = 3.0
#: Bigrams do not cross sentence or clause boundaries.
_SEGMENT = re.compile(r"[.!?;:()\[\]{}|\n\r\t,\"“”]+")

#: Characters only Vietnamese uses among the languages the company writes in.
_VI_LETTERS = frozenset("ăâđêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ")


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


ENGLISH_STOP_WORDS = _word_set(
    """a an and are as at be been by can do does for from has have how i if in into is it its
    me my of on or our so than that the their them then there these they this to us was we were
    what when where which who why will with you your"""
)

#: Vietnamese function words and question words ("là gì", "như thế nào", "của tôi"): like English
#: stop words they would otherwise outweigh the one rare term that matters ("SchemaDriftIncompatible").
#: Their accent-free spellings are listed too, for questions typed without diacritics; each is
#: overwhelmingly that function word when written without accents.
VIETNAMESE_STOP_WORDS = _word_set(
    """là gì của và có không tôi bạn được cho với thì mà này đó một các những như thế nào ở để
    khi nếu sao làm bị đã sẽ đang rồi vậy hay hoặc nhé ạ ơi mình em anh chị
    la gi cua va co khong toi duoc voi thi nay mot cac nhung nhu nao neu sao lam bi da se dang roi
    vay hoac nhe oi minh"""
)

_STOP_WORDS = ENGLISH_STOP_WORDS | VIETNAMESE_STOP_WORDS

#: Frequent Vietnamese syllables written without accents that are not English words: they let a
#: question typed without diacritics be recognised as Vietnamese.
_FOLDED_VI_SYLLABLES = _word_set(
    """khong cua duoc nhieu ngay giao hoan tien chuyen thanh toan nhan khoan minh nhung nguoi
    phai bao lau tra doi khi neu thi sao nao gi dau roi chua muon lam vay dat huy tai voi cho
    hang phi sau truoc trong ngoai gio tuan thang cac mot hai ba bon nam nhu the va la co
    hoa don kien goi hop tre tu chinh sach hoi yeu cau tham quyen ve toi ban kho mien
    vien thu nhan duoc dung nhanh cham mat loi hu hong hoan lai bi"""
)


def normalize(text: str) -> str:
    """NFC (one code point per accented letter) and case-folded."""
    return unicodedata.normalize("NFC", text).casefold()


def fold(text: str) -> str:
    """Remove diacritics: ``hoàn tiền`` → ``hoan tien`` (and ``đ`` → ``d``)."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def is_vietnamese_word(word: str) -> bool:
    return any(c in _VI_LETTERS for c in word)


def detect_lang(text: str) -> str:
    """``"vi"`` or ``"en"``: Vietnamese letters, or mostly Vietnamese syllables typed without accents."""
    words = _WORD.findall(normalize(text))
    if not words:
        return "en"
    accented = sum(1 for w in words if is_vietnamese_word(w))
    if accented / len(words) >= 0.15:
        return "vi"
    plain = sum(1 for w in words if w in _FOLDED_VI_SYLLABLES)
    return "vi" if len(words) >= 2 and plain / len(words) >= 0.5 else "en"


def _undouble(base: str) -> str:
    # shipped -> shipp -> ship; billing -> bill and missed -> miss keep their double letter.
    if len(base) >= 4 and base[-1] == base[-2] and base[-1] not in "lsz":
        return base[:-1]
    return base


def stem(word: str) -> str:
    """A light English stemmer: plural, -ed and -ing endings, and a final e (no dictionary).

    ``refunds``, ``refunded``, ``refunding`` → ``refund``; ``charge``, ``charges``, ``charged`` →
    ``charg``; ``shipped`` → ``ship``; ``applies``, ``applied`` → ``apply``.
    """
    if not word.isascii() or not word.isalpha() or len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    elif word.endswith("ied") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("ed") and len(word) >= 5:
        word = _undouble(word[:-2])
    elif word.endswith("ing") and len(word) >= 6:
        word = _undouble(word[:-3])
    if word.endswith("e") and len(word) >= 4:
        word = word[:-1]
    return word


def _words(segment: str) -> list[str]:
    return [w for w in _WORD.findall(segment) if w not in _STOP_WORDS]


def _term_stream(text: str) -> Iterator[tuple[str, str]]:
    """``(term, kind)`` for every term occurrence: kinds ``word``, ``folded`` (accent-free form of
    an accented word), ``part`` (of an identifier), ``pair`` and ``folded_pair`` (neighbours)."""
    for segment in _SEGMENT.split(normalize(text)):
        previous: tuple[str, str] | None = None
        for word in _words(segment):
            base = stem(word)
            folded = fold(base)
            yield base, "word"
            if folded != base:
                yield folded, "folded"
            if "_" in word:
                for part in word.split("_"):
                    if part and part not in ENGLISH_STOP_WORDS:
                        yield stem(part), "part"
            if previous is not None:
                yield f"{previous[0]}_{base}", "pair"
                if previous[1] != previous[0] or folded != base:
                    yield f"{previous[1]}_{folded}", "folded_pair"
            previous = (base, folded)


def terms(text: str) -> tuple[Counter[str], int]:
    """The bag of terms of ``text`` and its length in words (for BM25's length normalisation)."""
    bag: Counter[str] = Counter()
    length = 0
    for term, kind in _term_stream(text):
        bag[term] += 1
        length += kind == "word"
    return bag, length


def identifiers(text: str) -> set[str]:
    """Technical identifiers in ``text`` (``ledger_break``, ``SchemaDriftIncompatible``, ``vn-o-123``
    parts with digits), as index terms."""
    found = {w for w in _IDENTIFIER.findall(unicodedata.normalize("NFC", text))}
    return {stem(normalize(w)) for w in found}


def term_index(term: str) -> int:
    """The sparse-vector index of a term (CRC-32: stable across processes and machines)."""
    return zlib.crc32(term.encode())


def _to_sparse(weights: Iterable[tuple[str, float]]) -> tuple[list[int], list[float]]:
    merged: dict[int, float] = {}
    for term, weight in weights:
        index = term_index(term)
        merged[index] = merged.get(index, 0.0) + weight
    indices = sorted(merged)
    return indices, [merged[i] for i in indices]


def document_vector(text: str) -> tuple[list[int], list[float]]:
    """BM25 document weights of ``text`` (term-frequency saturation and length normalisation)."""
    bag, length = terms(text)
    norm = K1 * (1 - B + B * max(length, 1) / AVG_TERMS)
    return _to_sparse((term, tf * (K1 + 1) / (tf + norm)) for term, tf in bag.items())


def query_vector(text: str) -> tuple[list[int], list[float]]:
    """Query weights (the store multiplies them by IDF).

    Each distinct term weighs 1, except: the accent-free form of an accented word weighs
    ``FOLDED_QUERY_WEIGHT`` (the accented form already matches accented text; the folded form only
    bridges to text typed without accents, where it also meets unrelated words: "báo" → "bao",
    as in "bao nhiêu"); and a technical identifier weighs ``IDENTIFIER_QUERY_WEIGHT`` (a question
    naming ``SchemaDriftIncompatible`` in Vietnamese is about that alert, however many common
    Vietnamese words surround it).
    """
    wanted = identifiers(text)
    weights: dict[str, float] = {}
    for term, kind in _term_stream(text):
        if kind in ("folded", "folded_pair"):
            weight = FOLDED_QUERY_WEIGHT
        elif kind == "word" and term in wanted:
            weight = IDENTIFIER_QUERY_WEIGHT
        else:
            weight = 1.0
        weights[term] = max(weights.get(term, 0.0), weight)
    return _to_sparse(weights.items())
