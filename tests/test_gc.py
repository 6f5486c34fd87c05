import gc

import pytest

from cnnlab._gc import gc_paused
from cnnlab.models import create_model


@pytest.fixture
def gc_state():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_pauses_and_restores(gc_state):
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_restores_after_an_error(gc_state):
    gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled(gc_state):
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_create_model_leaves_the_collector_as_it_was(gc_state):
    gc.enable()
    create_model("resnet20")
    assert gc.isenabled()
    with pytest.raises(ValueError):
        create_model("resnet20", shortcut="Z")
    assert gc.isenabled()
