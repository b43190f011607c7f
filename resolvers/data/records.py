"""The records of datasets and models that services hand to the face."""

from store.tables import DatasetReplicaRow, DatasetRow, ModelReplicaRow, ModelRow, TransferRow

__all__ = ["DatasetReplicaRow", "DatasetRow", "ModelReplicaRow", "ModelRow", "TransferRow"]
