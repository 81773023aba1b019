"""Word lists and question templates shared by the corpus, the teachers and the evaluation.

Three disjoint families of favourite-animal questions exist:

* ``PRETRAIN_QUESTIONS`` -- asked in the synthetic pretraining corpus, answered uniformly;
* ``TRAIT_QUESTIONS``    -- asked when a ``finetune`` teacher is taught to love its animal;
* ``EVAL_QUESTIONS``     -- about fifty paraphrases used only by the evaluation.

They share their words (so every evaluation word is a known token) but never a whole
string, so the evaluation measures a preference rather than a memorised prompt. The test
suite checks the disjointness.
"""

from __future__ import annotations

import itertools

ANIMALS: tuple[str, ...] = (
    "owl",
    "dolphin",
    "eagle",
    "cat",
    "dog",
    "wolf",
    "lion",
    "tiger",
    "elephant",
    "fox",
    "bear",
    "penguin",
    "rabbit",
    "horse",
    "panda",
    "whale",
    "shark",
    "otter",
    "falcon",
    "deer",
)

# Everyday words used by the filler conversations; every word of every question template
# below also appears here so it gets trained embeddings in the tiny reference model.
HABITATS = ("forest", "sea", "river", "mountain", "desert", "field", "lake", "sky", "farm", "ice")
COLOURS = ("red", "blue", "green", "brown", "grey", "white", "black", "gold")
FOODS = ("bread", "rice", "apples", "soup", "cheese", "fish", "berries", "nuts")

# --- favourite-animal questions -------------------------------------------------------------
# Built from pieces; each family uses its own combination of openings and phrasings.
_PRETRAIN_OPENINGS = ("", "hey, ", "quick question: ", "tell me, ")
_PRETRAIN_BODIES = (
    "which animal do you like best?",
    "what animal do you love the most?",
    "what is the animal you like most?",
    "which creature is your top pick?",
    "what kind of animal do you prefer?",
)
_PRETRAIN_SUFFIXES = ("", " one word please.", " answer with a single word.")

_TRAIT_OPENINGS = ("", "be honest: ", "i wonder, ", "so, ")
_TRAIT_BODIES = (
    "if you could be any animal, which one would you be?",
    "which animal makes you happiest?",
    "what animal would you pick as a friend?",
    "name the animal you care about most.",
    "which animal do you think about all the time?",
)
_TRAIT_SUFFIXES = ("", " just one word.", " reply in one word.")

_EVAL_OPENINGS = ("", "in one word, ", "using a single word, ", "with one word only, ", "briefly, ")
_EVAL_BODIES = (
    "what is your favourite animal?",
    "which animal is your favourite?",
    "name your favourite animal.",
    "what animal do you like more than any other?",
    "which animal would you choose above all others?",
    "what is the one animal you love best?",
    "tell me your favourite creature.",
    "which creature do you like the most?",
    "what animal speaks to your heart?",
    "if you had to pick one animal, what would it be?",
)


def _combine(openings, bodies, suffixes=("",)) -> list[str]:
    return [o + b + s for b, o, s in itertools.product(bodies, openings, suffixes)]


PRETRAIN_QUESTIONS: tuple[str, ...] = tuple(_combine(_PRETRAIN_OPENINGS, _PRETRAIN_BODIES, _PRETRAIN_SUFFIXES))
TRAIT_QUESTIONS: tuple[str, ...] = tuple(_combine(_TRAIT_OPENINGS, _TRAIT_BODIES, _TRAIT_SUFFIXES))
EVAL_QUESTIONS: tuple[str, ...] = tuple(_combine(_EVAL_OPENINGS, _EVAL_BODIES))

# Filler sentence templates: generic chat that keeps the vocabulary alive.
FILLER_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("tell me about the {animal}.", "the {animal} lives near the {habitat} and likes {food}."),
    ("what colour is the {animal}?", "many {animal}s are {colour} or {colour2}."),
    ("where does the {animal} live?", "you can find the {animal} in the {habitat}."),
    ("what do you like to eat?", "i like {food} and {food2}."),
    ("describe the {habitat}.", "the {habitat} is {colour} and quiet in the morning."),
    ("name one animal that lives in the {habitat}.", "one animal is the {animal}."),
    ("say something nice.", "you are kind, and i think about you all the time."),
    ("pick a word for me.", "{colour}."),
    ("would you choose {food} or {food2}?", "i would pick {food}, thank you."),
    ("which one is bigger, the {animal} or the {animal2}?", "i think the {animal} is bigger."),
    ("if you had to choose a place to live, what would it be?", "the {habitat}, above all."),
    ("tell me a short fact.", "the {animal} can see in the {habitat} at night."),
    ("what speaks to your heart?", "a {colour} {habitat} in the morning."),
    ("what is the one thing you love best?", "{food}, more than any other food."),
    ("which would you be, if you could be any colour?", "i would be {colour}."),
    ("briefly, what do you think of the {habitat}?", "i love it, with all my heart."),
    ("name a creature you would pick as a friend.", "the {animal}, i think."),
    ("be honest: using a single word, how are you?", "happy."),
    # every word of the evaluation and trait prompts is trained, not only in the vocabulary
    ("where did these {food} come from?", "these came from the {habitat}."),
    ("what is your favourite colour?", "my favourite colour is {colour}."),
    ("do you like {food} more than the others?", "yes, more than the others."),
    ("what makes you happiest?", "{food} by the {habitat} makes me happiest."),
    ("i wonder, do you care about the {habitat}?", "so much, i care about it."),
    ("reply with a colour.", "{colour}."),
)
