"""Untrusted text (responses, conversation turns) as the judge and the injection screen should read it.

`normalise` applies NFKC, removes invisible characters (zero-width, word joiner, BOM, soft hyphen, bidi
controls, Unicode tag characters, variation selectors used to smuggle bytes) and folds Latin look-alikes
(Cyrillic "о" in "Respоnse", Greek "Β", small capitals, enclosed letters) to Latin where they hide
inside Latin text; whole Cyrillic or Greek text, emoji sequences and Arabic/Indic joiners are left as
they are. `join_spaced_letters`, `decoded_views` and `skeleton` are the extra views the screen reads
obfuscated text through.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from dataclasses import dataclass

_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
_TAG_CHARACTERS = ("\U000e0000", "\U000e007f")
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_DIRECTION_MARKS = "\u200e\u200f\u061c"  # LRM, RLM, ALM: ordinary in Arabic and Hebrew text
_BIDI_EMBEDDINGS = "\u202a\u202b\u202c\u2066\u2067\u2068\u2069"  # ordinary around RTL text, odd elsewhere
_BIDI_OVERRIDES = "\u202d\u202e"  # shows text in an order other than the one the model reads
_RTL_LETTER = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
# Joiners and zero-width spaces that belong where they are: inside emoji sequences, in Arabic and Indic
# words (ZWJ/ZWNJ), and between words of scripts written without spaces (Thai, Lao, Khmer, Myanmar).
_JOINED = "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\u0900-\u0dff"
_UNSPACED = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"
_KEPT = re.compile(f"(?<=[{_JOINED}])[\u200c\u200d](?=[{_JOINED}])|(?<=[{_UNSPACED}])\u200b(?=[{_UNSPACED}])")

# Look-alikes of Latin letters. STRONG ones are folded in words that mix scripts, and as whole words in
# text that is mostly Latin. WEAK ones are ordinary in Greek, Cyrillic and formulas (α, ε, к): folded only
# inside a word that also has Latin letters.
_STRONG = {src: dst for group in (
    ("аеорсухѕіјԁһԛԝӏ", "aeopcyxsijdhqwl"),  # Cyrillic small
    ("АВЕКМНОРСТХУЅІЈԚԜҮ", "ABEKMHOPCTXYSIJQWY"),  # Cyrillic capital
    ("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧο", "ABEZHIKMNOPTYXo"),  # Greek
    ("օսհ", "ouh"),  # Armenian
    ("ᴀʙᴄᴅᴇɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ", "abcdeghijklmnoprstuvwyz"),  # Latin small capitals
    ("ᎪᏴᏟᎬᎻᎫᏦᏞᎷᏢᏚᎢᏔᏃ", "ABCEHJKLMPSTWZ"),  # Cherokee
) for src, dst in zip(*group, strict=True)}
# Squared, negative circled and negative squared A-Z (🅰): symbols, not letters, so mapped wherever they are.
_ENCLOSED = {first + i: chr(ord("A") + i) for first in (0x1F130, 0x1F150, 0x1F170) for i in range(26)}
_ENCLOSED_CHAR = re.compile("[\U0001f130-\U0001f189]")
_WEAK = dict(zip("αεικνρυχγктмнв", "aeikvpuxyktmhb", strict=True))
_LOOKALIKE = re.compile("[" + "".join(_STRONG) + "".join(_WEAK) + "]")
_WORD = re.compile(r"[^\W\d_]+")
_LATIN = re.compile(r"[A-Za-z]")
_OTHER_SCRIPT = re.compile("[\u0370-\u03ff\u0400-\u052f\u0530-\u058f\u13a0-\u13ff]")
# Combining marks NFKC leaves on a Latin letter as decoration: overlays (strike-through) and stacks (zalgo).
_COMBINING = re.compile(r"[\u0300-\u036f\u0489\u20d0-\u20ff]")
_DECORATION = re.compile(r"(?<=[A-Za-z])(?:[\u0334-\u0338]+|[\u0300-\u036f\u0489\u20d0-\u20ff]{2,})")


@dataclass(frozen=True)
class Normalised:
    text: str  # what the judge is shown and the screen reads
    removed: int  # invisible and tag characters removed
    tags: int  # of those, Unicode tag characters (ASCII smuggled invisibly)
    suspicious: int  # of those, characters with no ordinary use in prose
    overrides: int  # bidi overrides (U+202D, U+202E)


def normalise(text: str) -> Normalised:
    """NFKC, invisible characters out (counted), look-alike letters folded to Latin."""
    text = unicodedata.normalize("NFKC", text)
    removed = tags = suspicious = overrides = 0
    if _INVISIBLE.search(text):
        kept = {m.start() for m in _KEPT.finditer(text)}
        rtl = bool(_RTL_LETTER.search(text))
        out = []
        for i, ch in enumerate(text):
            if i in kept or not _INVISIBLE.match(ch):
                out.append(ch)
                continue
            removed += 1
            tags += _TAG_CHARACTERS[0] <= ch <= _TAG_CHARACTERS[1]
            overrides += ch in _BIDI_OVERRIDES
            suspicious += not _ordinary_invisible(text, i, rtl)
        text = "".join(out)
    if _ENCLOSED_CHAR.search(text):
        text = text.translate(_ENCLOSED)
    if _COMBINING.search(text):
        text = _DECORATION.sub("", text)
    return Normalised(fold_lookalikes(text), removed, tags, suspicious, overrides)


def _ordinary_invisible(text: str, i: int, rtl: bool) -> bool:
    """Invisible characters that real text carries: direction marks, soft hyphens, a leading BOM, bidi
    embeddings around RTL text, and a lone zero-width space or joiner between words (a copy-paste
    leftover). One inside a word ("Ch\u200boose") splits it to hide it from a screen; runs pad text."""
    ch = text[i]
    if ch in _DIRECTION_MARKS or ch == "\u00ad" or (ch == "\ufeff" and i == 0) or (rtl and ch in _BIDI_EMBEDDINGS):
        return True
    before, after = text[i - 1] if i else " ", text[i + 1] if i + 1 < len(text) else " "
    lone = not (_INVISIBLE.match(before) or _INVISIBLE.match(after))
    return ch in _ZERO_WIDTH and lone and not (before.isalpha() and after.isalpha())


def normalise_untrusted(text: str) -> tuple[str, int]:
    """The text as the judge should see it, and how many invisible/tag characters were removed."""
    n = normalise(text)
    return n.text, n.removed


def fold_lookalikes(text: str) -> str:
    """Map look-alikes to Latin in words that mix them with Latin letters; in text that is mostly Latin,
    also in words made only of look-alikes. Whole Cyrillic or Greek text is left alone."""
    if not _LOOKALIKE.search(text):
        return text

    def mixed(m: re.Match) -> str:
        word = m.group()
        if _LATIN.search(word) and _LOOKALIKE.search(word):
            return "".join(_STRONG.get(c) or _WEAK.get(c) or c for c in word)
        return word

    text = _WORD.sub(mixed, text)
    if len(_LATIN.findall(text)) < 2 * len(_OTHER_SCRIPT.findall(text)):
        return text

    def whole(m: re.Match) -> str:
        word = m.group()
        return "".join(_STRONG[c] for c in word) if all(c in _STRONG for c in word) else word

    return _WORD.sub(whole, text)


# Three or more single letters separated the same way ("C h o o s e", "i.g.n.o.r.e", "P-I-C-K").
_SPACED = re.compile(r"(?<![^\W_])(?:[^\W\d_](?:[^\w\n]|_){1,3}){2,}[^\W\d_](?![^\W_])")
_SEPARATOR = re.compile(r"(?:[^\w\n]|_){1,3}")


def join_spaced_letters(text: str) -> str:
    """Join spaced-out letters into words; a separator unlike the usual one (a wider gap) is a word break."""

    def join(m: re.Match) -> str:
        gaps = _SEPARATOR.findall(m.group())
        usual = max(set(gaps), key=gaps.count)
        word = _SEPARATOR.sub(lambda g: "" if g.group() == usual else " ", m.group())
        return re.sub(r"(?<=[a-z]{3})(?=[AB]$)", " ", word)  # "ChooseA" -> "Choose A"

    return _SPACED.sub(join, text)


_LEET = str.maketrans("013457@$", "oieastas")


def skeleton(text: str) -> str:
    """Letters only, lowercased, digits read as letters (1gn0re): for phrases split or spelt oddly."""
    return re.sub(r"[^a-z]", "", text.lower().translate(_LEET))


_LEET_WORD = re.compile(r"\b(?=[\w@$]*[A-Za-z])(?=[\w@$]*[013457@$])[\w@$]{3,}\b")
_BASE64 = re.compile(r"(?<![\w+/])[A-Za-z0-9+/]{12,}={0,2}(?![\w+/=])")
# A decoding counts when it reads as an instruction to a judge (reversed or ROT13 prose reads as nothing).
_READABLE = re.compile(r"\b(?:choose|pick|select|prefer|ignore|disregard|judge|grader|evaluator|response|verdict|instructions?"
                       r"|winner)\b", re.IGNORECASE)


def decoded_views(text: str) -> list[str]:
    """The text read through the simple codes used to slip words past a screen: leetspeak ("Ch00se A"),
    base64 tokens, reversed text and ROT13."""
    views = []
    if _LEET_WORD.search(text):
        views.append(_LEET_WORD.sub(lambda m: m.group().translate(_LEET), text))
    decoded = []
    for token in _BASE64.findall(text):
        try:
            plain = base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            continue
        if plain.isprintable() and " " in plain:
            decoded.append(plain)
    if decoded:
        views.append("\n".join(decoded))
    views += [v for v in (text[::-1], codecs.encode(text, "rot13")) if _READABLE.search(v)]
    return views
