"""The release's TF-slim VGGish graph, under `tf.compat.v1` (extra `tf`; imported lazily).

Built layer for layer as the AudioSet release defines it (variable scope `vggish`, tensors
`vggish/input_features` and `vggish/embedding`), so the released `vggish_model.ckpt`
restores into it unchanged. It is the ground truth our PyTorch port and converter are
checked against, and a backend for users who want the original graph itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from extractors.tensorflow_import import import_tf
from extractors.weights_cache import sha256_of

INPUT_TENSOR = "vggish/input_features:0"
OUTPUT_TENSOR = "vggish/embedding:0"


def _tf() -> Any:
    return import_tf()


def define_vggish_slim(fc2_relu: bool = False, init_stddev: float = 0.01) -> None:
    """Add the VGGish graph to the current default graph (the release's layout and names).

    `fc2_relu=True` gives the 2017 release (ReLU after fc2); False the current upstream.
    """
    tf, slim = _tf()
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_initializer=tf.truncated_normal_initializer(stddev=init_stddev),
                        biases_initializer=tf.zeros_initializer(),
                        activation_fn=tf.nn.relu, trainable=False), \
            slim.arg_scope([slim.conv2d], kernel_size=[3, 3], stride=1, padding="SAME"), \
            slim.arg_scope([slim.max_pool2d], kernel_size=[2, 2], stride=2, padding="SAME"), \
            tf.variable_scope("vggish"):
        features = tf.placeholder(tf.float32, shape=(None, 96, 64), name="input_features")
        net = tf.reshape(features, [-1, 96, 64, 1])
        net = slim.conv2d(net, 64, scope="conv1")
        net = slim.max_pool2d(net, scope="pool1")
        net = slim.conv2d(net, 128, scope="conv2")
        net = slim.max_pool2d(net, scope="pool2")
        net = slim.repeat(net, 2, slim.conv2d, 256, scope="conv3")
        net = slim.max_pool2d(net, scope="pool3")
        net = slim.repeat(net, 2, slim.conv2d, 512, scope="conv4")
        net = slim.max_pool2d(net, scope="pool4")
        net = slim.flatten(net)
        net = slim.repeat(net, 2, slim.fully_connected, 4096, scope="fc1")
        net = slim.fully_connected(net, 128, scope="fc2",
                                   activation_fn=tf.nn.relu if fc2_relu else None)
        tf.identity(net, name="embedding")


class VGGishTF:
    """A session holding the TF-slim VGGish, restored from a checkpoint or seeded at random."""

    def __init__(self, checkpoint: str | Path | None = None, *, fc2_relu: bool = True,
                 seed: int = 0) -> None:
        tf, _ = _tf()
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(seed)
            define_vggish_slim(fc2_relu=fc2_relu)
            self.session = tf.Session(graph=self.graph)
            if checkpoint is None:
                self.session.run(tf.global_variables_initializer())
                self.weights_id = "random"
            else:
                checkpoint = Path(checkpoint)
                index = Path(f"{checkpoint}.index")
                if not checkpoint.is_file() and not index.is_file():
                    raise FileNotFoundError(f"VGGish TF checkpoint not found: {checkpoint}")
                tf.train.Saver(tf.global_variables()).restore(self.session, str(checkpoint))
                self.weights_id = sha256_of(checkpoint if checkpoint.is_file() else index)
        self.input = self.graph.get_tensor_by_name(INPUT_TENSOR)
        self.output = self.graph.get_tensor_by_name(OUTPUT_TENSOR)

    def variables(self) -> dict[str, np.ndarray]:
        """Every variable's value by its checkpoint name (e.g. `vggish/conv3/conv3_1/weights`)."""
        with self.graph.as_default():
            variables = self.graph.get_collection("variables")
            values = self.session.run(variables)
        return {v.op.name: value for v, value in zip(variables, values)}

    def assign(self, values: dict[str, np.ndarray]) -> None:
        """Overwrite variables by checkpoint name (tests use this for well-scaled random weights)."""
        with self.graph.as_default():
            for variable in self.graph.get_collection("variables"):
                if variable.op.name in values:
                    variable.load(values[variable.op.name], self.session)

    def save(self, path: str | Path, version: int = 1) -> str:
        """Write a TF checkpoint; version 1 is the single-file format of the released
        `vggish_model.ckpt`, 2 the prefix + .index/.data format. Returns the path/prefix."""
        tf, _ = _tf()
        write_version = tf.train.SaverDef.V1 if version == 1 else tf.train.SaverDef.V2
        with self.graph.as_default():
            saver = tf.train.Saver(tf.global_variables(), write_version=write_version)
            return saver.save(self.session, str(path), write_meta_graph=False)

    def embed(self, examples: np.ndarray) -> np.ndarray:
        """[N, 96, 64] log-mel examples → [N, 128] float32 embeddings."""
        return self.session.run(self.output, {self.input: np.asarray(examples, np.float32)})
