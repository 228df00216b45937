"""Embedded fine-tuning data sets, built on the machine so the default study needs no download.

Both are domains clearly unlike the base's pretraining prose (the stdlib's docstrings), so that
fine-tuning on them has something to forget:

- `code` (kind "text"): functions and methods of the standard library's source, with docstrings
  and comments removed (re-printed by `ast.unparse`), one per line of jsonl as {"text": ...}.
  Removing docstrings keeps the forgetting text out of the fine-tuning data.
- `instruct` (kind "instruction"): short instruction/answer pairs generated from a fixed seed
  (arithmetic and word problems, sorting, reversing, counting letters, unit conversions, ...),
  one per line as {"prompt": ..., "response": ...}.
- `pydoc` (kind "text"): the Python documentation's language reference (`pydoc_data.topics`, PSF
  licence), in sections; half held out. Forgetting text for a *real* pretrained model, which has
  seen such prose on the web (the embedded base's own forgetting text is `embedded:forget`).

Each has a train split (~2 MB) and a held-out validation split (~60-90 KB) with no document (code)
or prompt (instruct) in both; which side an item falls on is decided by a hash of it. Files live
in `<cache>/datasets/<name>-<recipe key>/` (cache: see `cache.py`): `train.jsonl`,
`validation.jsonl` and `dataset.json` (fingerprint = sha256 of the two split files, counts,
sizes, Python version). The recipe key covers this module's source and, for `code`, the stdlib
files, so a change in either rebuilds (in seconds).
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from forgetlab.embedded.cache import build_once, completed_entries, sha256_file, sha256_json
from forgetlab.embedded.corpus import parse_source, stdlib_dir, stdlib_signature, stdlib_sources
from forgetlab.errors import UserError
from forgetlab.locations import cache_root
from forgetlab.utils.files import write_json_atomic

TRAIN_BUDGET_CHARS = 2_000_000
VALIDATION_BUDGET_CHARS = 60_000
VALIDATION_PER_100 = 4
INSTRUCT_SEED = 0


@dataclass(frozen=True)
class EmbeddedDataset:
    """A built embedded data set: its split files and a fingerprint of their exact bytes."""

    name: str
    train_path: Path
    validation_path: Path
    kind: str  # "text" (field `text`) or "instruction" (fields `prompt`, `response`)
    fingerprint: str
    folder: Path

    def info(self) -> dict[str, Any]:
        return json.loads((self.folder / "dataset.json").read_text(encoding="utf-8"))


def _hash_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


Record = dict[str, str]


def _fill_splits(
    records: Iterable[tuple[str, Record]],
    budgets: tuple[int, int] = (TRAIN_BUDGET_CHARS, VALIDATION_BUDGET_CHARS),
    validation_per_100: int = VALIDATION_PER_100,
) -> tuple[list[Record], list[Record]]:
    """Deal (key, record) pairs into train/validation by the key's hash until both budgets are full.

    Records with a key already seen are skipped, so no key is in both splits or twice in one.
    """
    seen: set[str] = set()
    splits: tuple[list[Record], list[Record]] = ([], [])
    used = [0, 0]
    for key, record in records:
        if key in seen:
            continue
        seen.add(key)
        side = 1 if _hash_int(key) % 100 < validation_per_100 else 0
        if used[side] >= budgets[side]:
            if all(u >= b for u, b in zip(used, budgets)):
                break
            continue
        splits[side].append(record)
        used[side] += sum(len(value) for value in record.values())
    return splits


# ------------------------------------------------------------------------------------- code


MIN_CODE_CHARS = 200
MAX_CODE_CHARS = 6000


def _strip_docstrings(node: ast.AST) -> None:
    for inner in ast.walk(node):
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and inner.body:
            first = inner.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                inner.body = inner.body[1:] or [ast.Pass()]


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    """Module-level functions and the methods of module-level classes, with qualified names."""
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, functions):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, functions):
                    yield f"{node.name}.{member.name}", member


def _code_records() -> Iterator[tuple[str, Record]]:
    root = stdlib_dir()
    candidates: list[tuple[int, ast.AST]] = []
    for path in stdlib_sources(root):
        tree = parse_source(path)
        if tree is None:
            continue
        relative = path.relative_to(root).as_posix()
        candidates.extend((_hash_int(f"{relative}:{name}"), node) for name, node in _functions(tree))
    # Hash order samples the whole library evenly instead of the alphabetically first packages.
    candidates.sort(key=lambda candidate: candidate[0])
    for _, node in candidates:
        _strip_docstrings(node)
        text = ast.unparse(node)
        if MIN_CODE_CHARS <= len(text) <= MAX_CODE_CHARS:
            yield text, {"text": text}


# -------------------------------------------------------------------------------- instruct

_NAMES = (
    "Ada Ben Chloe Dan Elena Farid Grace Hugo Iris Jonas Kemal Lena Marco Nadia Omar Priya "
    "Quinn Rosa Sam Tara Umar Vera Wen Yusuf Zoe"
).split()
_ITEMS = "apples books marbles stickers pencils cookies coins cards shells stamps buttons lemons".split()
_WORDS = (
    "apple river garden window planet yellow silver orange pencil rabbit candle forest mountain "
    "button dragon letter summer winter autumn spring butter castle engine bridge island jacket "
    "kitten ladder market needle number ocean pepper question rocket saddle shadow singer spider "
    "ticket tunnel valley violin wallet whistle wonder zebra anchor basket cactus desert dinner "
    "feather flower guitar hammer helmet honey insect jungle kettle lantern lemon magnet meadow "
    "mirror morning napkin orchard paddle parrot pillow puzzle quilt rainbow ribbon saucer "
    "scooter sponge stone sugar table thunder tiger tomato towel turtle umbrella velvet wagon "
    "walnut whale wizard yogurt circle cloud dream echo friend glass harbor idea journey kingdom"
).split()
_CONVERSIONS = (
    ("kilometres", "metres", 1000),
    ("metres", "centimetres", 100),
    ("kilograms", "grams", 1000),
    ("litres", "millilitres", 1000),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("days", "hours", 24),
    ("weeks", "days", 7),
    ("feet", "inches", 12),
    ("yards", "feet", 3),
    ("dozens", "items", 12),
)


def _numbers(rng: random.Random, low: int, high: int) -> list[int]:
    return [rng.randint(low, high) for _ in range(rng.randint(3, 7))]


def _joined(values: Iterable[object]) -> str:
    return ", ".join(str(value) for value in values)


def _add(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    return f"What is {a} plus {b}?", f"{a} + {b} = {a + b}"


def _subtract(rng: random.Random) -> tuple[str, str]:
    a, b = sorted((rng.randint(0, 999), rng.randint(0, 999)), reverse=True)
    return f"What is {a} minus {b}?", f"{a} - {b} = {a - b}"


def _multiply(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(2, 99), rng.randint(2, 12)
    return f"What is {a} times {b}?", f"{a} * {b} = {a * b}"


def _gift(rng: random.Random) -> tuple[str, str]:
    first, second = rng.sample(_NAMES, 2)
    items, a, b = rng.choice(_ITEMS), rng.randint(1, 60), rng.randint(1, 40)
    prompt = f"{first} has {a} {items}. {second} gives {first} {b} more. How many {items} does {first} have now?"
    return prompt, f"{a} + {b} = {a + b}. {first} has {a + b} {items} now."


def _giveaway(rng: random.Random) -> tuple[str, str]:
    first, second = rng.sample(_NAMES, 2)
    items = rng.choice(_ITEMS)
    a = rng.randint(2, 80)
    b = rng.randint(1, a)
    prompt = f"{first} had {a} {items} and gave {b} of them to {second}. How many {items} does {first} have left?"
    return prompt, f"{a} - {b} = {a - b}. {first} has {a - b} {items} left."


def _share(rng: random.Random) -> tuple[str, str]:
    people, each = rng.randint(2, 9), rng.randint(1, 12)
    items, name = rng.choice(_ITEMS), rng.choice(_NAMES)
    prompt = (
        f"{name} shares {people * each} {items} equally among {people} friends. How many {items} does each friend get?"
    )
    return prompt, f"{people * each} / {people} = {each}. Each friend gets {each} {items}."


def _sort_numbers(rng: random.Random) -> tuple[str, str]:
    values = _numbers(rng, 0, 99)
    if rng.random() < 0.5:
        return f"Sort these numbers from smallest to largest: {_joined(values)}", _joined(sorted(values))
    return f"Sort these numbers from largest to smallest: {_joined(values)}", _joined(sorted(values, reverse=True))


def _sort_words(rng: random.Random) -> tuple[str, str]:
    words = rng.sample(_WORDS, rng.randint(3, 6))
    return f"Sort these words alphabetically: {_joined(words)}", _joined(sorted(words))


def _extreme(rng: random.Random) -> tuple[str, str]:
    values = _numbers(rng, 0, 999)
    if rng.random() < 0.5:
        return f"What is the largest number in this list: {_joined(values)}?", f"The largest number is {max(values)}."
    return f"What is the smallest number in this list: {_joined(values)}?", f"The smallest number is {min(values)}."


def _reverse(rng: random.Random) -> tuple[str, str]:
    words = rng.sample(_WORDS, rng.randint(1, 2))
    phrase = " ".join(words)
    return f'Reverse the text "{phrase}".', phrase[::-1]


def _count_letter(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(_WORDS)
    letter = rng.choice(word) if rng.random() < 0.8 else rng.choice("abcdefghijklmnopqrstuvwxyz")
    count = word.count(letter)
    times = "time" if count == 1 else "times"
    return (
        f'How many times does the letter "{letter}" appear in "{word}"?',
        f'"{letter}" appears {count} {times} in "{word}".',
    )


def _length(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(_WORDS)
    return f'How many letters are in the word "{word}"?', f'"{word}" has {len(word)} letters.'


def _spell(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(_WORDS)
    return f'Spell "{word}" letter by letter.', "-".join(word)


def _uppercase(rng: random.Random) -> tuple[str, str]:
    phrase = " ".join(rng.sample(_WORDS, rng.randint(2, 4)))
    return f'Write "{phrase}" in capital letters.', phrase.upper()


def _convert(rng: random.Random) -> tuple[str, str]:
    source, target, factor = rng.choice(_CONVERSIONS)
    amount = rng.randint(2, 250)
    return f"Convert {amount} {source} to {target}.", f"{amount} {source} is {amount * factor} {target}."


def _sequence(rng: random.Random) -> tuple[str, str]:
    start, step = rng.randint(0, 50), rng.randint(2, 15)
    terms = [start + step * i for i in range(rng.randint(4, 6))]
    return (
        f"What number comes next: {_joined(terms)}?",
        f"{terms[-1] + step}, because each number is {step} more than the one before.",
    )


def _parity(rng: random.Random) -> tuple[str, str]:
    number = rng.randint(0, 9999)
    return f"Is {number} even or odd?", f"{number} is {'even' if number % 2 == 0 else 'odd'}."


def _compare(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(range(1000), 2)
    return f"Which is larger, {a} or {b}?", f"{max(a, b)} is larger than {min(a, b)}."


_TASKS: tuple[Callable[[random.Random], tuple[str, str]], ...] = (
    _add, _subtract, _multiply, _gift, _giveaway, _share, _sort_numbers, _sort_words, _extreme,
    _reverse, _count_letter, _length, _spell, _uppercase, _convert, _sequence, _parity, _compare,
)  # fmt: skip


def _instruct_records() -> Iterator[tuple[str, Record]]:
    rng = random.Random(INSTRUCT_SEED)
    # Bounded, in case the budgets ever exceed what the tasks can generate without repeats.
    for _ in range(2_000_000):
        prompt, response = rng.choice(_TASKS)(rng)
        yield prompt, {"prompt": prompt, "response": response}


# ---------------------------------------------------------------------------------- pydoc

PYDOC_SECTION_CHARS = 1500
PYDOC_VALIDATION_PER_100 = 50


def _pydoc_records() -> Iterator[tuple[str, Record]]:
    """The Python documentation's language-reference prose that every Python carries (`pydoc_data.topics`).

    Text a web-trained model has seen in kind (Python's documentation is all over the web), unlike
    anything the embedded data sets fine-tune on: forgetting text for a real pretrained model.
    Topics are cut at blank lines into sections of about 1,500 characters, each keyed by topic and
    position, so the hash split puts whole sections on one side.
    """
    from pydoc_data.topics import topics

    for topic in sorted(topics):
        section: list[str] = []
        index = 0
        for paragraph in topics[topic].split("\n\n"):
            section.append(paragraph)
            if sum(len(part) for part in section) >= PYDOC_SECTION_CHARS:
                yield f"{topic}:{index}", {"text": "\n\n".join(section).strip()}
                section, index = [], index + 1
        if section and "\n\n".join(section).strip():
            yield f"{topic}:{index}", {"text": "\n\n".join(section).strip()}


# ------------------------------------------------------------------------------- the sets


@dataclass(frozen=True)
class _Recipe:
    kind: str
    records: Callable[[], Iterator[tuple[str, Record]]]
    reads_stdlib: bool
    validation_per_100: int = VALIDATION_PER_100
    budgets: tuple[int, int] = (TRAIN_BUDGET_CHARS, VALIDATION_BUDGET_CHARS)
    source: str = ""  # what the records come from, for dataset.json


_RECIPES: dict[str, _Recipe] = {
    "code": _Recipe("text", _code_records, reads_stdlib=True, source="the standard library's source"),
    "instruct": _Recipe("instruction", _instruct_records, reads_stdlib=False, source=f"generated, seed {INSTRUCT_SEED}"),
    # Half held out: the 'test' split is forgetting text, the 'train' split pretraining-domain replay text.
    "pydoc": _Recipe(
        "text", _pydoc_records, reads_stdlib=True, validation_per_100=PYDOC_VALIDATION_PER_100,
        budgets=(TRAIN_BUDGET_CHARS, TRAIN_BUDGET_CHARS), source="pydoc_data.topics",
    ),
}  # fmt: skip
EMBEDDED_DATASETS: tuple[str, ...] = tuple(_RECIPES)


def _write_jsonl(path: Path, records: list[Record]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _build(folder: Path, name: str, recipe: _Recipe, key: str) -> None:
    train, validation = _fill_splits(recipe.records(), recipe.budgets, recipe.validation_per_100)
    # The same text under two keys (pydoc's topics repeat whole sections) must not be on both sides:
    # it leaves the training side, so the held-out side (forgetting text, L_ft) is what the hash decided.
    held_out = {json.dumps(record, sort_keys=True) for record in validation}
    train = [record for record in train if json.dumps(record, sort_keys=True) not in held_out]
    _write_jsonl(folder / "train.jsonl", train)
    _write_jsonl(folder / "validation.jsonl", validation)
    fingerprint = hashlib.sha256(
        (sha256_file(folder / "train.jsonl") + sha256_file(folder / "validation.jsonl")).encode()
    ).hexdigest()
    write_json_atomic(
        folder / "dataset.json",
        {
            "name": name,
            "kind": recipe.kind,
            "fingerprint": fingerprint,
            "recipe_key": key,
            "train_records": len(train),
            "validation_records": len(validation),
            "train_bytes": (folder / "train.jsonl").stat().st_size,
            "validation_bytes": (folder / "validation.jsonl").stat().st_size,
            "python_version": sys.version,
            "source": f"{recipe.source} ({stdlib_dir()})" if recipe.reads_stdlib else recipe.source,
        },
    )


def ensure_embedded_dataset(name: str, force: bool = False) -> EmbeddedDataset:
    """The embedded data set `name` ('code', 'instruct' or 'pydoc'), built on first use (seconds) and cached."""
    recipe = _RECIPES.get(name)
    if recipe is None:
        raise UserError(f"unknown embedded data set '{name}'; use one of {', '.join(EMBEDDED_DATASETS)}")
    key = sha256_json(
        {
            "name": name,
            "code": sha256_file(Path(__file__)),
            "stdlib": stdlib_signature() if recipe.reads_stdlib else None,
        }
    )
    folder = cache_root() / "datasets" / f"{name}-{key[:12]}"
    build_once(folder, lambda temporary: _build(temporary, name, recipe, key), force=force)
    fingerprint = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["fingerprint"]
    return EmbeddedDataset(
        name=name,
        train_path=folder / "train.jsonl",
        validation_path=folder / "validation.jsonl",
        kind=recipe.kind,
        fingerprint=fingerprint,
        folder=folder,
    )


def list_cached_datasets() -> list[dict[str, Any]]:
    """dataset.json of every complete embedded data set in the cache, plus its folder."""
    return completed_entries(cache_root() / "datasets", "dataset.json")
