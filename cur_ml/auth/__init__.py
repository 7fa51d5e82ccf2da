"""Who is calling: environment tokens and personal accounts, and limits on failed attempts.

Shared by the JSON API (bearer tokens) and the operator console (sign-in form); neither
knows HTTP here: answers are `Verdict`s, turned into 401/403/429 at the edge.
"""

from cur_ml.auth.identity import Authenticator, Identity, Verdict
from cur_ml.auth.limits import AuthLimiter
from cur_ml.auth.regions import RegionAccess

__all__ = ["AuthLimiter", "Authenticator", "Identity", "RegionAccess", "Verdict"]
