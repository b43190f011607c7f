"""The records of datasets and models that services hand to the face."""

from store.tables import DatasetReplicaRow, DatasetRow, ModelRow

__all__ = ["DatasetReplicaRow", "DatasetRow", "ModelRow"]
