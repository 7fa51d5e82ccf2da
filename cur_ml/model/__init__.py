"""The four-head appeal model: training, prediction, evaluation, persistence."""

from cur_ml.model.bundle import RoutingModel, load_model
from cur_ml.model.classifier import HEADS, AppealClassifier
from cur_ml.model.review import ReviewPolicy

__all__ = ["HEADS", "AppealClassifier", "ReviewPolicy", "RoutingModel", "load_model"]
