"""One router per resource: predict, model (incl. admin reload), health, metrics, corrections,
review queue, predictions (history), admin retrain. The operator web page is `cur_ml.console`."""
