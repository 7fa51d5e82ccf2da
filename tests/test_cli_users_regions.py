"""`cur-ml users add --region`, `users regions` and `users list` on a deployment of two
regions: an account works in the regions it is given (the default one when none is), and a
region the deployment does not serve is refused in one line naming it."""

from __future__ import annotations

import json
import sys

from cur_ml.cli import main
from cur_ml.store import make_engine
from cur_ml.store.users import UserRepository


def test_accounts_belong_to_the_regions_they_are_given(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    monkeypatch.setenv("CUR_ML_DATABASE_URL", url)
    monkeypatch.setenv("CUR_ML_REGION", "spb")
    monkeypatch.setenv("CUR_ML_REGIONS", '["spb", "krd"]')

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["cur-ml", "users", *args])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    code, token, err = run("add", "Кузнецов", "--region", "krd")
    assert code == 0 and "regions krd" in err
    assert run("add", "Оба", "--role", "admin", "--region", "spb", "--region", "krd")[0] == 0
    assert run("add", "Петрова")[0] == 0  # no --region: the deployment's default one

    code, _, err = run("add", "Иванов", "--region", "spb", "--region", "xx")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("cur-ml: error: ") and "unknown region 'xx'" in err
    assert "spb, krd" in err
    users = UserRepository(make_engine(url))
    assert users.get("Иванов") is None  # nothing made

    listed = {row["name"]: row["regions"] for row in map(json.loads, run("list")[1].splitlines())}
    assert listed == {"Кузнецов": ["krd"], "Оба": ["spb", "krd"], "Петрова": ["spb"]}

    code, out, _ = run("regions", "Петрова", "--region", "krd", "--region", "spb")
    assert code == 0 and "krd,spb" in out
    assert users.get("Петрова").region_codes("spb") == ("krd", "spb")
    code, _, err = run("regions", "Петрова", "--region", "msk")
    assert code == 2 and "unknown region 'msk'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run("regions", "Петрова")
    assert code == 2 and "--region" in err
    code, _, err = run("regions", "Нет такого", "--region", "spb")
    assert code == 2 and "no account named 'Нет такого'" in err
    assert users.check(token.strip()).name == "Кузнецов"  # the token printed works
