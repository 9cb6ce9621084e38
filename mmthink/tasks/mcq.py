"""Many small multiple-choice tasks, varied in difficulty, for calibrating a small LM across tasks.

Thermometer learns from many tasks whose best temperatures differ. No benchmark ships offline, so the
tasks here are generated: arithmetic, number comparisons, calendar and unit questions and string
puzzles are computed, and the word/fact tasks (opposites, plurals, capitals, continents, animal
classes) draw on short lists written by hand from common knowledge, keeping only unambiguous facts.

A row: ``{"task": str, "question": str, "options": [str, ...] (2-5), "answer": int}``, ``answer``
indexing ``options``. Every task is deterministic given the seed (its generator draws from
``random.Random(f"{seed}:{task}")``), option order is shuffled with the answer index tracked, and a
task's question texts are unique.

The prompt (``format_prompt``)::

    Question: What is 7 + 5?
    A. 11
    B. 12
    C. 14
    D. 13
    Answer:

and the model is scored by its next-token logits at the option letters, or, for LMs too small to
answer by letter, by the log-likelihood of each option's text after the prompt without the option
lines (see ``mmthink.methods.thermometer.scoring``). Free-form rows ``{"task", "question", "answer": str}`` are
written beside them under ``freeform/``.

``mmthink data mcq --out DIR [--seed S]`` writes ``DIR/<task>.jsonl`` per task and
``DIR/freeform/<task>.jsonl``; ``assets/mcq`` holds the committed copies (seed 0, the command's
default), which a test regenerates.
"""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path
from typing import Callable

from mmthink.data.rows import BadRow, load_rows, need
from mmthink.io import write_jsonl
from mmthink.tasks.grading import words

LETTERS = "ABCDE"
MAX_OPTIONS = len(LETTERS)
SEED = 0
N_PER_TASK = 150  # at most; the fact tasks hold fewer unique questions (at least 100 each)

# ---------------------------------------------------------------------------------------------------
# Rows, validation, prompt


def validate_mcq_row(row: dict) -> None:
    need(row, "task", str, nonempty=True)
    need(row, "question", str, nonempty=True)
    options = need(row, "options", list)
    if not 2 <= len(options) <= MAX_OPTIONS:
        raise BadRow("options", f"expected 2 to {MAX_OPTIONS} options, got {len(options)}")
    for i, o in enumerate(options):
        if not isinstance(o, str) or not o.strip():
            raise BadRow(f"options[{i}]", "expected a non-empty string")
    if len(set(options)) != len(options):
        raise BadRow("options", "options repeat")
    answer = need(row, "answer", int)
    if not 0 <= answer < len(options):
        raise BadRow("answer", f"index {answer} is out of range for {len(options)} options")


def validate_freeform_row(row: dict) -> None:
    need(row, "task", str, nonempty=True)
    need(row, "question", str, nonempty=True)
    need(row, "answer", str, nonempty=True)


def load_mcq(path, limit=None) -> list[dict]:
    """The validated rows of a multiple-choice JSONL/parquet file (a UserError names file:line)."""
    return [dict(r) for r in load_rows(path, validate_mcq_row, limit)]


def load_freeform(path, limit=None) -> list[dict]:
    return [{k: r[k] for k in ("task", "question", "answer")} for r in load_rows(path, validate_freeform_row, limit)]


def format_question(row: dict, options: bool = True) -> str:
    """``Question: ...`` and (with ``options``) one ``X. option`` line per option (letters A, B, ...)."""
    lines = [f"Question: {row['question']}"]
    if options:
        lines += [f"{LETTERS[i]}. {o}" for i, o in enumerate(row["options"])]
    return "\n".join(lines)


ANSWER_PREFIX = "Answer:"


def format_prompt(row: dict, options: bool = True) -> str:
    """The plain (no chat template) prompt: ``format_question(row, options)`` then a line ``Answer:``.
    With the options listed the next token is scored as an option letter (`` A`` for most tokenizers);
    without them (cloze scoring) the option texts themselves are scored as continuations."""
    return f"{format_question(row, options)}\n{ANSWER_PREFIX}"


# ---------------------------------------------------------------------------------------------------
# Building rows


def _row(task: str, question: str, correct, distractors, rng: random.Random) -> dict:
    options = [str(correct)] + [str(d) for d in distractors]
    assert len(set(options)) == len(options), (task, question, options)
    rng.shuffle(options)
    return {"task": task, "question": question, "options": options, "answer": options.index(str(correct))}


def _pick(rng: random.Random, pool, k: int, exclude=()) -> list:
    """``k`` distinct items of ``pool`` not in ``exclude`` (pool order is fixed, so this is seeded)."""
    return rng.sample([p for p in dict.fromkeys(pool) if p not in exclude], k)


def _unique(make: Callable[[random.Random], tuple], task: str, rng: random.Random, n: int,
            by_options: bool = False) -> list[dict]:
    """Draw (question, correct, distractors) from ``make`` until ``n`` distinct questions (distinct option
    sets when ``by_options``: tasks that ask one question about different options)."""
    rows, seen = [], set()
    for _ in range(50 * n):
        question, correct, distractors = make(rng)
        key = frozenset(map(str, [correct, *distractors])) if by_options else question
        if key in seen:
            continue
        seen.add(key)
        rows.append(_row(task, question, correct, distractors, rng))
        if len(rows) == n:
            return rows
    raise RuntimeError(f"task {task}: only {len(rows)} distinct questions")


def _near_numbers(rng: random.Random, value: int, k: int, offsets=(1, 2, 10, -1, -2, -10), low: int = 0) -> list:
    cands = [value + d for d in offsets if value + d >= low and value + d != value]
    return _pick(rng, cands, k)


# ---------------------------------------------------------------------------------------------------
# Computed tasks


def _add_small(rng):
    a, b = rng.randint(0, 12), rng.randint(0, 12)
    return f"What is {a} + {b}?", a + b, _near_numbers(rng, a + b, 3, (1, 2, 3, -1, -2, -3))


def _add_large(rng):
    a, b = rng.randint(100, 899), rng.randint(100, 899)
    return f"What is {a} + {b}?", a + b, _near_numbers(rng, a + b, 3, (1, 10, 100, -1, -10, -100))


def _subtract(rng):
    a = rng.randint(20, 99)
    b = rng.randint(2, a - 1)
    return f"What is {a} - {b}?", a - b, _near_numbers(rng, a - b, 3, (1, 2, 10, -1, -2, -10), low=0)


def _multiply(rng):
    a, b = rng.randint(2, 14), rng.randint(2, 14)
    wrong = {a * b + a, a * b - a, a * b + b, a * b - b, (a + 1) * (b + 1), a + b} - {a * b}
    return f"What is {a} x {b}?", a * b, _pick(rng, sorted(wrong), 3)


def _compare_numbers(rng):
    a, b = rng.sample(range(1, 1000), 2)
    word = rng.choice(["larger", "smaller"])
    correct = max(a, b) if word == "larger" else min(a, b)
    return f"Which number is {word}: {a} or {b}?", correct, [a + b - correct]


def _min_of_four(rng):
    nums = rng.sample(range(10, 100), 4)
    word = rng.choice(["smallest", "largest"])
    correct = min(nums) if word == "smallest" else max(nums)
    return f"Which of these numbers is the {word}?", correct, [x for x in nums if x != correct]


def _fraction_larger(rng):
    def frac():
        d = rng.randint(2, 12)
        return rng.randint(1, d - 1), d

    (a, b), (c, d) = frac(), frac()
    while Fraction(a, b) == Fraction(c, d):
        c, d = frac()
    # Written as drawn (e.g. 2/4), not reduced.
    x, y = f"{a}/{b}", f"{c}/{d}"
    bigger, smaller = (x, y) if Fraction(a, b) > Fraction(c, d) else (y, x)
    return f"Which fraction is larger: {x} or {y}?", bigger, [smaller]


def _even_odd(rng):
    n = rng.randint(1, 999)
    return f"Is {n} an even or an odd number?", "even" if n % 2 == 0 else "odd", ["odd" if n % 2 == 0 else "even"]


def _next_in_sequence(rng):
    start, step = rng.randint(1, 30), rng.randint(2, 9)
    terms = [start + i * step for i in range(4)]
    nxt = start + 4 * step
    return (f"What number comes next: {', '.join(map(str, terms))}, ...?", nxt,
            _pick(rng, [nxt + 1, nxt - 1, nxt + step, nxt - step + 1, nxt + 2], 3, exclude={nxt}))


DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def _day_after(rng):
    i, n = rng.randrange(7), rng.randint(1, 30)
    correct = DAYS[(i + n) % 7]
    return f"Today is {DAYS[i]}. What day of the week will it be in {n} days?", correct, _pick(rng, DAYS, 3, {correct})


def _month_after(rng):
    i, n = rng.randrange(12), rng.randint(1, 11)
    if rng.random() < 0.5:
        correct, q = MONTHS[(i + n) % 12], f"Which month comes {n} months after {MONTHS[i]}?"
    else:
        correct, q = MONTHS[(i - n) % 12], f"Which month comes {n} months before {MONTHS[i]}?"
    if n == 1:
        q = q.replace("1 months", "1 month")
    return q, correct, _pick(rng, MONTHS, 3, {correct})


# (larger unit, smaller unit, how many smaller units in one larger unit)
UNITS = [("meters", "centimeters", 100), ("kilometers", "meters", 1000), ("kilograms", "grams", 1000),
         ("liters", "milliliters", 1000), ("hours", "minutes", 60), ("minutes", "seconds", 60),
         ("days", "hours", 24), ("weeks", "days", 7), ("years", "months", 12), ("centimeters", "millimeters", 10)]


def _unit_conversion(rng):
    big, small, f = rng.choice(UNITS)
    n = rng.randint(2, 20)
    wrong = {n * g for _, _, g in UNITS} | {n + f, n * f * 10}
    return f"How many {small} are in {n} {big}?", n * f, _pick(rng, sorted(wrong), 3, {n * f})


# ---------------------------------------------------------------------------------------------------
# String tasks over a list of common words

WORDS = (
    "apple banana orange grape lemon cherry peach melon mango carrot potato tomato onion garden flower "
    "forest river mountain ocean island desert valley meadow window door table chair pillow blanket "
    "kitchen bottle pencil paper letter school teacher student doctor farmer pilot sailor painter "
    "rabbit turtle monkey tiger zebra camel donkey parrot eagle salmon spider beetle dragon castle "
    "bridge tower village city street market station airport harbor planet rocket comet moon sun star "
    "cloud thunder rainbow winter summer spring autumn morning evening yellow purple silver golden "
    "purple basket candle mirror button pocket jacket sweater helmet hammer ladder wagon bicycle "
    "engine needle thread ribbon puzzle riddle jungle canyon glacier volcano lizard kettle teapot "
    "butter cheese bread cookie pepper ginger honey sugar coffee walnut almond cabbage pumpkin "
    "lantern compass anchor barrel saddle violin guitar trumpet piano drum banner crystal marble "
    "shadow whistle feather pebble puddle breeze blossom cactus cottage palace orchard stable fountain "
    "hammock umbrella notebook backpack elbow finger shoulder tongue nostril quilt carpet curtain "
    "chimney attic cellar garage fence hedge tractor harvest wheat barley oyster lobster falcon "
    "kitten puppy lemonade pancake noodle biscuit muffin yogurt"
).split()
WORDS = list(dict.fromkeys(WORDS))
ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def _first_letter(rng):
    w = rng.choice(WORDS)
    return f"What is the first letter of the word '{w}'?", w[0], _pick(rng, ALPHABET, 3, {w[0]})


def _last_letter(rng):
    w = rng.choice(WORDS)
    return f"What is the last letter of the word '{w}'?", w[-1], _pick(rng, ALPHABET, 3, {w[-1]})


def _word_length(rng):
    w = rng.choice(WORDS)
    n = len(w)
    return f"How many letters are in the word '{w}'?", n, _near_numbers(rng, n, 3, (1, 2, 3, -1, -2), low=1)


def _count_letter(rng):
    w = rng.choice(WORDS)
    letter = rng.choice(w) if rng.random() < 0.8 else rng.choice([c for c in ALPHABET if c not in w])
    n = w.count(letter)
    return (f"How many times does the letter '{letter}' appear in the word '{w}'?", n,
            _pick(rng, range(0, 5), 3, {n}))


def _alphabetical(rng):
    words = rng.sample(WORDS, 4)
    return "Which word comes first in alphabetical order?", min(words), [w for w in words if w != min(words)]


NAMES = ["Anna", "Ben", "Carla", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jack", "Lena", "Omar"]
RELATIONS = [("taller", "shorter"), ("older", "younger"), ("faster", "slower"), ("heavier", "lighter")]


def _logic_order(rng):
    x, y, z = rng.sample(NAMES, 3)  # x > y > z
    more, less = rng.choice(RELATIONS)
    rank = {x: 2, y: 1, z: 0}
    a, b = rng.sample([x, y, z], 2)
    word = rng.choice([more, less])
    truth = rank[a] > rank[b] if word == more else rank[a] < rank[b]
    q = f"{x} is {more} than {y}. {y} is {more} than {z}. Is {a} {word} than {b}?"
    return q, "Yes" if truth else "No", ["No" if truth else "Yes"]


# ---------------------------------------------------------------------------------------------------
# Fact tasks (compiled by hand from common knowledge; only unambiguous facts are kept: no countries
# with disputed or several capitals, no transcontinental countries, no nouns with two accepted plurals)


def _pairs(text: str) -> list[tuple[str, str]]:
    return [tuple(s.strip() for s in p.split(":")) for p in text.split(";") if p.strip()]


# Pairs of opposites in groups of related words; a question's distractors come from other groups only,
# so that no distractor is a second plausible opposite (e.g. "below" for the opposite of "up").
OPPOSITE_GROUPS = [_pairs(g) for g in (
    "big:small; tall:short; thick:thin; narrow:wide; deep:shallow",
    "up:down; above:below; top:bottom; high:low; front:back; inside:outside; entrance:exit",
    "begin:end; first:last; before:after; early:late; always:never; young:old",
    "hot:cold; wet:dry; light:dark; day:night; black:white",
    "happy:sad; love:hate; friend:enemy; alive:dead; asleep:awake; safe:dangerous",
    "fast:slow; hard:soft; strong:weak; loud:quiet; smooth:rough; clean:dirty",
    "open:closed; full:empty; true:false; question:answer; remember:forget",
    "push:pull; win:lose; buy:sell; give:take; arrive:depart; accept:refuse; add:subtract",
    "rich:poor; cheap:expensive; increase:decrease; maximum:minimum",
    "left:right; north:south; east:west",
    "boy:girl; brother:sister; king:queen",
)]
OPPOSITES = [p for g in OPPOSITE_GROUPS for p in g]

# (singular, plural)
PLURALS = _pairs(
    "child:children; man:men; woman:women; foot:feet; tooth:teeth; goose:geese; sheep:sheep; "
    "leaf:leaves; knife:knives; wife:wives; wolf:wolves; half:halves; life:lives; loaf:loaves; shelf:shelves; "
    "thief:thieves; city:cities; baby:babies; party:parties; story:stories; lady:ladies; "
    "country:countries; family:families; cherry:cherries; berry:berries; puppy:puppies; body:bodies; fly:flies; "
    "spy:spies; sky:skies; army:armies; hobby:hobbies; box:boxes; fox:foxes; bus:buses; church:churches; "
    "watch:watches; dish:dishes; brush:brushes; glass:glasses; class:classes; kiss:kisses; bench:benches; "
    "beach:beaches; match:matches; wish:wishes; tax:taxes; dress:dresses; lunch:lunches; peach:peaches; "
    "tomato:tomatoes; potato:potatoes; boy:boys; day:days; key:keys; toy:toys; monkey:monkeys; valley:valleys; "
    "journey:journeys; chimney:chimneys; donkey:donkeys; tray:trays; cat:cats; dog:dogs; book:books; car:cars; "
    "tree:trees; house:houses; girl:girls; apple:apples; chair:chairs; table:tables; pen:pens; cup:cups; "
    "bird:birds; radio:radios; piano:pianos; photo:photos; zoo:zoos; cliff:cliffs; crisis:crises; "
    "analysis:analyses; bacterium:bacteria; door:doors; "
    "window:windows; river:rivers; mountain:mountains; flower:flowers; bottle:bottles; pencil:pencils; "
    "road:roads; shoe:shoes; hat:hats; ship:ships; coat:coats; star:stars; lamp:lamps; bag:bags; bed:beds; "
    "knee:knees; face:faces; rose:roses; nose:noses; fork:forks; spoon:spoons; plate:plates; bush:bushes; "
    "candy:candies; lily:lilies; pony:ponies; ferry:ferries"
)


def _plural_forms(word: str) -> list[str]:
    """Wrong-or-right plural forms by the usual rules (the caller removes the right one)."""
    forms = [word + "s", word + "es", word, word + "en", word + "ies"]
    if word.endswith("y"):
        forms += [word[:-1] + "ies", word[:-1] + "ys"]
    if word.endswith(("f", "fe")):
        forms += [word.rstrip("e")[:-1] + "ves", word.rstrip("e")[:-1] + "fs"]
    if word.endswith("o"):
        forms += [word + "es"]
    if word.endswith("is"):
        forms += [word[:-2] + "es", word + "ses"]
    if word.endswith(("on", "um")):
        forms += [word[:-2] + "a", word[:-2] + "ae"]
    return forms


CAPITALS = _pairs(
    "France:Paris; Germany:Berlin; Italy:Rome; Spain:Madrid; Portugal:Lisbon; United Kingdom:London; "
    "Ireland:Dublin; Belgium:Brussels; Austria:Vienna; Poland:Warsaw; Czech Republic:Prague; Hungary:Budapest; "
    "Greece:Athens; Sweden:Stockholm; Norway:Oslo; Denmark:Copenhagen; Finland:Helsinki; Russia:Moscow; "
    "Ukraine:Kyiv; Romania:Bucharest; Bulgaria:Sofia; Serbia:Belgrade; Croatia:Zagreb; Iceland:Reykjavik; "
    "Slovakia:Bratislava; Slovenia:Ljubljana; Estonia:Tallinn; Latvia:Riga; Lithuania:Vilnius; Albania:Tirana; "
    "Turkey:Ankara; Egypt:Cairo; Kenya:Nairobi; Nigeria:Abuja; Ethiopia:Addis Ababa; Morocco:Rabat; "
    "Ghana:Accra; Senegal:Dakar; Algeria:Algiers; Tunisia:Tunis; Uganda:Kampala; Zimbabwe:Harare; "
    "Angola:Luanda; Japan:Tokyo; China:Beijing; South Korea:Seoul; North Korea:Pyongyang; India:New Delhi; "
    "Thailand:Bangkok; Vietnam:Hanoi; Philippines:Manila; Pakistan:Islamabad; Iran:Tehran; Iraq:Baghdad; "
    "Saudi Arabia:Riyadh; Afghanistan:Kabul; Nepal:Kathmandu; Bangladesh:Dhaka; Mongolia:Ulaanbaatar; "
    "Syria:Damascus; Jordan:Amman; Lebanon:Beirut; Qatar:Doha; Malaysia:Kuala Lumpur; Cambodia:Phnom Penh; "
    "Laos:Vientiane; Canada:Ottawa; United States:Washington, D.C.; Mexico:Mexico City; Cuba:Havana; "
    "Jamaica:Kingston; Brazil:Brasilia; Argentina:Buenos Aires; Chile:Santiago; Peru:Lima; Colombia:Bogota; "
    "Venezuela:Caracas; Ecuador:Quito; Uruguay:Montevideo; Paraguay:Asuncion; Australia:Canberra; "
    "New Zealand:Wellington"
)

_CONTINENT_TEXT = {
    "Europe": "France, Germany, Italy, Spain, Portugal, Ireland, Belgium, Austria, Switzerland, Netherlands, "
              "Poland, Czech Republic, Hungary, Greece, Sweden, Norway, Denmark, Finland, Ukraine, Romania, "
              "Bulgaria, Serbia, Croatia, Iceland, Slovakia, Slovenia, Estonia, Latvia, Lithuania, Belarus, "
              "Luxembourg, Albania, United Kingdom, Malta, Moldova, Monaco",
    "Asia": "Japan, China, South Korea, North Korea, India, Thailand, Vietnam, Philippines, Pakistan, Iran, "
            "Iraq, Saudi Arabia, Afghanistan, Nepal, Bangladesh, Malaysia, Mongolia, Laos, Cambodia, Sri Lanka, "
            "Bhutan, Jordan, Syria, Oman, Yemen, Qatar, Kuwait, Singapore, Myanmar, Uzbekistan, Lebanon",
    "Africa": "Kenya, Nigeria, Ethiopia, Morocco, Ghana, South Africa, Algeria, Tunisia, Libya, Sudan, Uganda, "
              "Tanzania, Senegal, Mali, Niger, Chad, Cameroon, Angola, Zambia, Zimbabwe, Botswana, Namibia, "
              "Mozambique, Madagascar, Somalia, Rwanda",
    "North America": "Canada, United States, Mexico, Guatemala, Honduras, Nicaragua, Costa Rica, Cuba, Jamaica, "
                     "Haiti",
    "South America": "Brazil, Argentina, Chile, Peru, Colombia, Venezuela, Ecuador, Bolivia, Paraguay, Uruguay, "
                     "Guyana, Suriname",
    "Oceania": "Australia, New Zealand, Fiji, Papua New Guinea, Samoa, Tonga",
}
CONTINENTS = [(c.strip(), k) for k, v in _CONTINENT_TEXT.items() for c in v.split(",")]

_ANIMAL_TEXT = {
    "mammal": "dog, cat, horse, cow, whale, dolphin, bat, elephant, lion, tiger, bear, rabbit, mouse, goat, "
              "sheep, pig, monkey, giraffe, zebra, kangaroo, camel, deer, wolf, fox, squirrel, otter, seal, "
              "hippopotamus, rhinoceros, platypus, hedgehog, donkey, moose, koala, beaver, badger, cheetah, "
              "leopard, panda, gorilla, chimpanzee, hamster, raccoon, walrus, buffalo, llama",
    "bird": "eagle, sparrow, penguin, ostrich, owl, parrot, chicken, duck, swan, pigeon, crow, flamingo, hawk, "
            "robin, turkey, goose, peacock, hummingbird, woodpecker, seagull, pelican, emu, falcon, vulture, "
            "stork, canary, magpie, raven, toucan",
    "fish": "salmon, tuna, shark, goldfish, trout, cod, carp, catfish, eel, sardine, herring, mackerel, swordfish, "
            "clownfish, piranha, halibut, pike, anchovy, seahorse, haddock, minnow, barracuda, guppy",
    "reptile": "snake, lizard, crocodile, alligator, turtle, tortoise, iguana, gecko, chameleon, cobra, python, "
               "komodo dragon, rattlesnake, viper",
    "amphibian": "frog, toad, salamander, newt, axolotl, bullfrog",
}
ANIMALS = [(a.strip(), k) for k, v in _ANIMAL_TEXT.items() for a in v.split(",")]


def _facts(task: str, rng: random.Random, items: list[tuple], n: int) -> list[dict]:
    """One row per (question, correct, distractor pool, how many distractors) item, in a seeded order, at
    most ``n``."""
    items = list(items)
    rng.shuffle(items)
    return [_row(task, q, c, _pick(rng, cands, k, {c}), rng) for q, c, cands, k in items[:n]]


def _opposite_rows(task, rng, n):
    items = []
    for gi, group in enumerate(OPPOSITE_GROUPS):
        others = [w for gj, g in enumerate(OPPOSITE_GROUPS) if gj != gi for p in g for w in p]
        items += [(f"What is the opposite of '{a}'?", b, others, 3) for x, y in group for a, b in ((x, y), (y, x))]
    return _facts(task, rng, items, n)


def _plural_rows(task, rng, n):
    items = [(f"What is the plural of '{s}'?", p, _plural_forms(s), 3) for s, p in PLURALS]
    return _facts(task, rng, items, n)


def _the(country: str) -> str:
    """``the United States``, ``the Philippines``; other country names take no article."""
    return f"the {country}" if country.startswith(("United ", "Czech ", "Philippines", "Netherlands")) else country


def _capital_rows(task, rng, n):
    countries, capitals = [c for c, _ in CAPITALS], [c for _, c in CAPITALS]
    items = [(f"What is the capital of {_the(c)}?", k, capitals, 3) for c, k in CAPITALS]
    items += [(f"{k} is the capital of which country?", c, countries, 3) for c, k in CAPITALS]
    return _facts(task, rng, items, n)


def _continent_rows(task, rng, n):
    items = [(f"On which continent is {_the(c)}?", k, list(_CONTINENT_TEXT), 3) for c, k in CONTINENTS]
    return _facts(task, rng, items, n)


def _animal_rows(task, rng, n):
    classes = list(_ANIMAL_TEXT)
    items = [(f"What kind of animal is a{'n' if a[0] in 'aeiou' else ''} {a}?", k, classes, 3) for a, k in ANIMALS]
    return _facts(task, rng, items, n)


def _computed(make, by_options: bool = False):
    return lambda task, rng, n: _unique(make, task, rng, n, by_options)


# task name -> builder(task, rng, n) -> rows
TASKS: dict[str, Callable[[str, random.Random, int], list[dict]]] = {
    "add_small": _computed(_add_small),
    "add_large": _computed(_add_large),
    "subtract": _computed(_subtract),
    "multiply": _computed(_multiply),
    "compare_numbers": _computed(_compare_numbers),
    "min_max_of_four": _computed(_min_of_four, by_options=True),
    "fraction_larger": _computed(_fraction_larger),
    "even_odd": _computed(_even_odd),
    "next_in_sequence": _computed(_next_in_sequence),
    "day_after": _computed(_day_after),
    "month_after": _computed(_month_after),
    "unit_conversion": _computed(_unit_conversion),
    "first_letter": _computed(_first_letter),
    "last_letter": _computed(_last_letter),
    "word_length": _computed(_word_length),
    "count_letter": _computed(_count_letter),
    "alphabetical": _computed(_alphabetical, by_options=True),
    "logic_order": _computed(_logic_order),
    "opposites": _opposite_rows,
    "plurals": _plural_rows,
    "capitals": _capital_rows,
    "continents": _continent_rows,
    "animal_classes": _animal_rows,
}


def generate(task: str, seed: int = SEED, n: int = N_PER_TASK) -> list[dict]:
    return TASKS[task](task, random.Random(f"{seed}:{task}"), n)


# ---------------------------------------------------------------------------------------------------
# Free-form tasks: {"task", "question", "answer": str}. An answer is graded correct when it shares a word
# with the reference (ROUGE-L > 0), so no reference shares a word with its question: an answer that
# only repeats the question ("The capital of Mexico is ...") must not pass.


def _echo_safe(rows: list[dict]) -> list[dict]:
    # The words ROUGE-L compares (grading.words), so that "shares a word" means what the grader sees.
    return [r for r in rows if not set(words(r["question"])) & set(words(r["answer"]))]


def _ff_capitals(rng, n):
    rows = _echo_safe([{"question": f"What is the capital of {_the(c)}?", "answer": k} for c, k in CAPITALS])
    rng.shuffle(rows)
    return rows[:n]


def _ff_arithmetic(rng, n):
    rows, seen = [], set()
    while len(rows) < n:
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        op = rng.choice(["plus", "times"])
        q = f"What is {a} {op} {b}?"
        if q not in seen:
            seen.add(q)
            rows += _echo_safe([{"question": q, "answer": str(a + b if op == "plus" else a * b)}])
    return rows


def _ff_opposites(rng, n):
    rows = _echo_safe([{"question": f"What is the opposite of the word '{a}'?", "answer": b}
                       for x, y in OPPOSITES for a, b in ((x, y), (y, x))])
    rng.shuffle(rows)
    return rows[:n]


FREEFORM_TASKS = {"ff_capitals": _ff_capitals, "ff_arithmetic": _ff_arithmetic, "ff_opposites": _ff_opposites}
N_FREEFORM = 100


def generate_freeform(task: str, seed: int = SEED, n: int = N_FREEFORM) -> list[dict]:
    rows = FREEFORM_TASKS[task](random.Random(f"{seed}:{task}"), n)
    return [{"task": task, **r} for r in rows]


def write_all(out_dir: Path, seed: int = SEED) -> list[Path]:
    out_dir = Path(out_dir)
    paths = []
    for task in TASKS:
        paths.append(out_dir / f"{task}.jsonl")
        write_jsonl(generate(task, seed), paths[-1])
    for task in FREEFORM_TASKS:
        paths.append(out_dir / "freeform" / f"{task}.jsonl")
        write_jsonl(generate_freeform(task, seed), paths[-1])
    return paths
