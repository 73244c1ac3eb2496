"""A crafted checkpoint is refused by ``weights_only=True`` with one line, and nothing runs."""

from __future__ import annotations

import os
import pickle
import warnings

import pytest

from auxtune.robust.checkpoint import load_checkpoint


class _Payload:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_pickle_payload_is_refused_in_one_line_without_unsafe_advice(tmp_path, protocol):
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    path.write_bytes(pickle.dumps(_Payload(marker), protocol=protocol))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's protocol warning must not reach the user
        with pytest.raises(ValueError) as info:
            load_checkpoint(path)
    message = str(info.value)
    assert not marker.exists()
    assert "\n" not in message and "evil.pt is not an auxtune checkpoint" in message
    assert "weights_only` set to `False`" not in message and "will likely succeed" not in message
    assert "runs no code" in message
