"""FTNS on an Ethereum-compatible chain: contracts, a web3.py client, settlement and deposits."""
