"""One id rule (recsys.data.ids) everywhere: the Dataset, the models, the engine, the service schemas and keys.

The case that told the copies apart: a trailing newline, which Python's ``re.match(r"^...$")`` accepts."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from recsys.data.dataset import Dataset
from recsys.data.ids import ID_REGEX, check_ids, check_user_id, is_valid_id
from recsys.models.base import check_user_ids
from recsys.service.auth import KeyStore
from recsys.service.schemas import PRODUCT_ID_PATTERN, USER_ID_PATTERN, ProductId, UserId

BAD = ["abc\n", "", "Jane Doe", "x" * 129, "\tabc"]


@pytest.mark.parametrize("bad", BAD)
def test_every_check_refuses_the_same_ids(bad):
    assert not is_valid_id(bad)
    with pytest.raises(ValueError, match="malformed user id"):
        check_ids([bad], "user")
    with pytest.raises(ValueError, match="malformed user id"):
        check_user_id(bad)
    with pytest.raises(ValueError, match="malformed user id"):
        check_user_ids([bad])
    with pytest.raises(ValidationError):
        TypeAdapter(UserId).validate_python(bad)
    with pytest.raises(ValidationError):
        TypeAdapter(ProductId).validate_python(bad)
    with pytest.raises(ValueError, match="user_id"):
        KeyStore().add(bad)


def test_the_service_patterns_are_the_data_rule():
    assert USER_ID_PATTERN == PRODUCT_ID_PATTERN == ID_REGEX
    for good in ["user_0", "product_85123A", "customer-17@shop", "x" * 128]:
        assert is_valid_id(good) and check_user_id(good) == good
        assert TypeAdapter(UserId).validate_python(good) == good
        KeyStore().add(good)


def test_engine_refuses_a_trailing_newline_id(engine):
    user = str(engine.dataset_.users.user_id.iloc[0])
    assert engine.realtime(user, 3)["recommendations"]
    for call in (engine.realtime, engine.full):
        with pytest.raises(ValueError, match="malformed user id"):
            call(user + "\n", 3)
    with pytest.raises(ValueError, match="malformed user id"):
        engine.deals(user + "\n", 1)


def test_dataset_refuses_a_trailing_newline_id(small_dataset):
    users = small_dataset.users.copy()
    users.loc[users.index[0], "user_id"] = "abc\n"
    with pytest.raises(ValueError, match="user_id"):
        Dataset(users, small_dataset.products, small_dataset.events, small_dataset.as_of)
