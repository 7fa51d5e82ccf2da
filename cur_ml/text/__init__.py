"""Russian preprocessing of appeals: normalise, tokenise (spaCy), lemmatise (pymorphy3).

Heavy objects (spaCy tokenizer, pymorphy3 dictionaries) are built on first use.
"""

from cur_ml.text.normalize import normalize
from cur_ml.text.preprocessor import RussianPreprocessor
from cur_ml.text.stopwords import STOPWORDS
from cur_ml.text.tokenize import Token

__all__ = ["STOPWORDS", "RussianPreprocessor", "Token", "normalize"]
