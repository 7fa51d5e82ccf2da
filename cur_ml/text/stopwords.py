"""Russian stop-words for topic routing, as lemmas (normal forms, ``ё`` written ``е``).

Only words that say nothing about the topic of an appeal. Negation (``не``, ``нет``,
``ни``, ``нельзя``) stays: "нет воды" and "не работает" are the topic. Place words
(``дом``, ``двор``, ``улица``, ``подъезд``) stay too.

The tokenizer splits hyphenated words, so no entry has a hyphen ("что-то": "что", "то").
"""

from __future__ import annotations

__all__ = ["STOPWORDS"]

_PRONOUNS = """
я ты он она оно мы вы они себя свой мой твой наш ваш его ее их
этот это тот такой таков какой каков который кто что чей весь все сам самый
каждый любой другой иной некоторый некий никто ничто ничего нечто кое нибудь
сей оный столько сколько
"""
_PREPOSITIONS = """
в на с к по о от до из у за под над при про для без через между перед около
вокруг после кроме вместо среди ради сквозь путем насчет согласно
"""
_CONJUNCTIONS = """
и а но или либо что чтобы если когда как так также тоже потому поэтому
хотя пока будто словно ибо причем притом зато однако тогда чем нежели раз то
"""
_PARTICLES = """
ли же бы вот вон ведь даже лишь только уж еще уже именно разве неужели ну ка
мол дескать якобы вроде типа
"""
# "т.к", "т.д" typed without dots; "др" of "и др."
_ABBREVIATED_FILLERS = """
тк тд тп тч др
"""
_AUXILIARIES = """
быть есть являться стать мочь
"""
_ADVERBS = """
очень просто вообще весьма довольно совсем слишком крайне почти также итак
там тут здесь где куда откуда туда сюда оттуда отсюда везде всюду
теперь сейчас потом затем тогда
более менее наиболее наименее
"""
_POLITENESS = """
здравствуйте здравствовать привет пожалуйста спасибо благодарить благодарность
уважаемый добрый заранее просьба
"""
_SINGLE_LETTERS = "абвгдежзийклмнопрстуфхцчшщъыьэюяabcdefghijklmnopqrstuvwxyz"

STOPWORDS: frozenset[str] = frozenset(
    " ".join(
        (
            _PRONOUNS,
            _PREPOSITIONS,
            _CONJUNCTIONS,
            _PARTICLES,
            _ABBREVIATED_FILLERS,
            _AUXILIARIES,
            _ADVERBS,
            _POLITENESS,
        )
    ).split()
) | frozenset(_SINGLE_LETTERS)
"""Lemmas dropped by ``RussianPreprocessor(drop_stopwords=True)``."""
