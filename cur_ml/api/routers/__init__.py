"""One router per resource: predict, model (incl. admin reload), health, metrics."""
