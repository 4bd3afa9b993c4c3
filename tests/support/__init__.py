"""What every test folder shares: clocks, brokers, service processes, change events, Marketo
settings. Imported as `tests.support.…`; nothing here is a test."""
