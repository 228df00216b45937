"""The data a run reads, logged as MLflow dataset inputs (the UI's Dataset column and filter).

Each `RunDataset` becomes an `mlflow.data` `MetaDataset` (metadata only: forgetlab never copies
data into the store) whose digest is forgetlab's fingerprint of it (the `fingerprint.*` param of
the same data, so the two always agree) and whose source says where it was read from:
`hugging_face` for a hub data set, `local` for a file, `forgetlab_embedded` for the embedded
corpora. Its role is the input tag `mlflow.data.context`: `training`, `validation`,
`forgetting` or `replay`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal, Optional

from mlflow.data.dataset_source import DatasetSource

from forgetlab.tracking.names import DATASET_CONTEXT

Location = Literal["embedded", "local", "hub"]


@dataclass(frozen=True)
class RunDataset:
    """One data set of a run: its role, name, fingerprint, and where it comes from."""

    context: str  # training | validation | forgetting | replay
    name: str
    digest: str  # forgetlab's fingerprint (at most 36 characters: MLflow's limit)
    source: str  # as configured: 'embedded:NAME', a local path, or a hub id
    location: Location
    hub_config: Optional[str] = None
    split: Optional[str] = None


class EmbeddedDatasetSource(DatasetSource):
    """An embedded corpus (`embedded:code`, `embedded:forget`, ...): built by forgetlab with its base."""

    def __init__(self, uri: str, split: Optional[str] = None):
        self.uri = uri
        self.split = split

    @staticmethod
    def _get_source_type() -> str:
        return "forgetlab_embedded"

    def load(self) -> Any:
        raise NotImplementedError("an embedded corpus is rebuilt by forgetlab with its base, not loaded from MLflow")

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return isinstance(raw_source, str) and raw_source.startswith("embedded:")

    @classmethod
    def _resolve(cls, raw_source: Any) -> "EmbeddedDatasetSource":
        return cls(raw_source)

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "split": self.split}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> "EmbeddedDatasetSource":
        return cls(source_dict["uri"], source_dict.get("split"))


def _register() -> None:
    """Make `mlflow.data.get_source` read an embedded source back (in any process that imports this module)."""
    from mlflow.data.dataset_source_registry import register_dataset_source

    register_dataset_source(EmbeddedDatasetSource)


_register()


def dataset_source(dataset: RunDataset) -> DatasetSource:
    """MLflow's source class for where `dataset` was read from."""
    if dataset.location == "hub":
        from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

        return HuggingFaceDatasetSource(dataset.source, config_name=dataset.hub_config, split=dataset.split)
    if dataset.location == "local":
        from pathlib import Path

        from mlflow.data.dataset_source_registry import resolve_dataset_source

        with warnings.catch_warnings():  # MLflow registers the local source twice and says so
            warnings.simplefilter("ignore")
            return resolve_dataset_source(str(Path(dataset.source).expanduser().resolve()))
    return EmbeddedDatasetSource(dataset.source, dataset.split)


def dataset_input(dataset: RunDataset):
    """The `DatasetInput` entity `MlflowClient.log_inputs` takes."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    entity = MetaDataset(dataset_source(dataset), name=dataset.name, digest=dataset.digest)._to_mlflow_entity()
    return DatasetInput(entity, tags=[InputTag(DATASET_CONTEXT, dataset.context)])


def input_key(dataset_input) -> tuple[str, str, str]:
    """(name, digest, context): what makes two inputs of a run the same input."""
    context = next((tag.value for tag in dataset_input.tags if tag.key == DATASET_CONTEXT), "")
    return dataset_input.dataset.name, dataset_input.dataset.digest, context
