"""Operator console: server-rendered pages for working through the review queue.

Sign-in with the operator (or admin) token, the queue, an appeal's card with the
deciding words marked and one-key corrections, and the model page.
"""

from cur_ml.console.router import router

__all__ = ["router"]
