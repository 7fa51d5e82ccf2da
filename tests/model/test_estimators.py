"""One common test of the scikit-learn contract for every estimator of the package."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from cur_ml.data import appeal_columns
from cur_ml.model.classifier import AppealClassifier
from cur_ml.model.features import AppealFeaturizer
from cur_ml.model.heads import LinearHead
from cur_ml.model.place import PlaceResolver
from cur_ml.text import RussianPreprocessor


def _fit_and_output(estimator, frame):
    if isinstance(estimator, RussianPreprocessor):
        fitted = estimator.fit(frame["text"])
        return fitted, fitted.transform(frame["text"])
    if isinstance(estimator, AppealFeaturizer):
        fitted = estimator.fit(frame)
        return fitted, fitted.transform(frame).toarray()
    if isinstance(estimator, LinearHead):
        X = AppealFeaturizer().fit(frame).transform(frame)
        fitted = estimator.fit(X, frame["category"].to_numpy())
        return fitted, fitted.predict_proba(X)
    if isinstance(estimator, PlaceResolver):
        fitted = estimator.fit(frame)
        return fitted, [p.as_dict() for p in fitted.resolve(appeal_columns(frame))]
    fitted = estimator.fit(frame)
    return fitted, fitted.score(frame).proba["reason"]


def _use_unfitted(estimator, frame):
    if isinstance(estimator, RussianPreprocessor):
        return estimator.transform(frame["text"])
    if isinstance(estimator, LinearHead):
        return estimator.predict_proba(np.zeros((1, 3)))
    if isinstance(estimator, AppealFeaturizer):
        return estimator.transform(frame)
    if isinstance(estimator, PlaceResolver):
        return estimator.resolve(appeal_columns(frame))
    return estimator.score(frame)


ESTIMATORS = [
    RussianPreprocessor(),
    AppealFeaturizer(),
    LinearHead(),
    PlaceResolver(),
    AppealClassifier(),
]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_estimator_contract(estimator, demo_train, tmp_path):
    frame = demo_train.frame.head(300)
    params = estimator.get_params()
    # __init__ stores its arguments and nothing learned.
    assert not [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]
    assert clone(estimator).get_params() == params
    with pytest.raises(NotFittedError):
        _use_unfitted(clone(estimator), frame)
    fresh = clone(estimator)
    fitted, output = _fit_and_output(fresh, frame)
    assert fitted is fresh  # fit returns self
    assert estimator.get_params() == params  # fitting a clone leaves the original alone
    joblib.dump(fitted, tmp_path / "est.joblib")
    _, again = None, None
    reloaded = joblib.load(tmp_path / "est.joblib")
    if isinstance(reloaded, RussianPreprocessor):
        again = reloaded.transform(frame["text"])
        assert again == output
    elif isinstance(reloaded, AppealFeaturizer):
        np.testing.assert_allclose(reloaded.transform(frame).toarray(), output)
    elif isinstance(reloaded, PlaceResolver):
        assert [p.as_dict() for p in reloaded.resolve(appeal_columns(frame))] == output
    elif isinstance(reloaded, LinearHead):
        X = AppealFeaturizer().fit(frame).transform(frame)
        np.testing.assert_allclose(reloaded.predict_proba(X), output, rtol=1e-5)
    else:
        np.testing.assert_allclose(reloaded.score(frame).proba["reason"], output, rtol=1e-5)
