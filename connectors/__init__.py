"""One connector per compute center, all behind the contract in `connectors.base`."""
