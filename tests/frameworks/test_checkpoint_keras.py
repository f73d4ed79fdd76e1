"""DriveCheckpoint as a Keras callback, against the Drive emulator (issue 23).

A run stopped after 3 of 6 epochs and resumed by a fresh model (other initial weights, an
optimizer with no variables yet) ends with exactly the weights of an uninterrupted run: the
weights and the optimizer state (Adam's moments and ``iterations``) come back and training
continues at epoch 4.
"""

from __future__ import annotations

import pytest

import colabmodels as cm

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")
np = pytest.importorskip("numpy")

EPOCHS = 6


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1))).astype("float32")
    return x, y


def _model(seed: int):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


class StopAt(keras.callbacks.Callback):
    """Stops training (like a disconnect) when epoch ``n`` (0-based) begins."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.n:
            raise KeyboardInterrupt("disconnect")


def _fit(model, epochs, callbacks):
    x, y = _data()
    return model.fit(x, y, epochs=epochs, batch_size=16, shuffle=False, verbose=0,
                     validation_data=(x[:16], y[:16]), callbacks=callbacks)


@pytest.fixture(scope="module")
def uninterrupted():
    model = _model(0)
    _fit(model, EPOCHS, [])
    return [w.copy() for w in model.get_weights()], int(model.optimizer.iterations.numpy())


def test_resumed_run_ends_with_the_uninterrupted_weights(drive_env, uninterrupted):
    weights, iterations = uninterrupted
    dest = "MyDrive/runs/keras"
    first = _model(0)
    ckpt = cm.DriveCheckpoint(dest, keep_last=2, monitor="val_loss")
    assert isinstance(ckpt, keras.callbacks.Callback)
    with pytest.raises(KeyboardInterrupt):
        _fit(first, EPOCHS, [ckpt, StopAt(3)])
    assert ckpt.wait() == []
    assert [v.metadata["epoch"] for v in cm.versions(dest)][-1] == 3

    resumed = _model(7)  # other initial weights; its optimizer has no variables yet
    assert not resumed.optimizer.built
    history = _fit(resumed, EPOCHS, [cm.DriveCheckpoint(dest, keep_last=2, monitor="val_loss")])
    assert len(history.history["loss"]) == EPOCHS - 3  # continued at epoch 4
    assert int(resumed.optimizer.iterations.numpy()) == iterations
    for got, want in zip(resumed.get_weights(), weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)

    versions = cm.versions(dest)
    epochs = [v.metadata["epoch"] for v in versions]
    assert epochs == sorted(epochs) and epochs[-1] == EPOCHS  # some may be skipped (latest wins)
    best = [v for v in versions if "best" in v.tags]
    assert len(best) == 1
    newest_two = {v.version for v in versions[-2:]}
    assert len(versions) == (2 if best[0].version in newest_two else 3)  # keep_last=2 (+ best)
    losses = {v.metadata["epoch"]: v.metadata["val_loss"] for v in versions}
    assert best[0].metadata["val_loss"] == min(losses.values())
    assert all("loss" in v.metadata and "val_loss" in v.metadata for v in versions)

    loaded = cm.load_model(f"{dest}@best", progress=False)  # own save: no trust=True needed
    assert isinstance(loaded, keras.Model)
    latest = cm.load_model(f"{dest}@latest", progress=False)
    for got, want in zip(latest.get_weights(), weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_a_finished_run_rerun_trains_no_more_epochs(drive_env):
    dest = "MyDrive/runs/done"
    model = _model(1)
    _fit(model, 2, [cm.DriveCheckpoint(dest)])
    again = _model(2)
    history = _fit(again, 2, [cm.DriveCheckpoint(dest)])
    assert history.history.get("loss", []) == []
    for got, want in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want)
    assert [v.metadata["epoch"] for v in cm.versions(dest)][-1] == 2
    assert again._initial_epoch is None  # a later fit of the same model starts at 0 again


def test_every_epochs_saves_the_last_epoch_too(drive_env):
    dest = "MyDrive/runs/every"
    _fit(_model(3), 5, [cm.DriveCheckpoint(dest, every_epochs=2, keep_last=None)])
    epochs = [v.metadata["epoch"] for v in cm.versions(dest)]
    assert epochs[-1] == 5 and set(epochs) <= {2, 4, 5}  # 2 and 4 unless a lagging upload skipped one


def test_fit_goes_on_while_drive_is_down_and_says_what_is_pending(drive_env):
    dest = "MyDrive/runs/down"

    class DriveGoesDown(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                drive_env.stop()

    ckpt = cm.DriveCheckpoint(dest)
    with pytest.warns(UserWarning, match="network or Drive is down"):
        history = _fit(_model(5), 3, [DriveGoesDown(), ckpt])
    assert len(history.history["loss"]) == 3  # training went on
    drive_env.start()
    assert ckpt.wait() == []
    assert [v.metadata["epoch"] for v in cm.versions(dest)] == [3]  # the newest one won
