import sys
from pathlib import Path

import pytest

# Let the test modules import the ingest_images helper beside them.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def store(tmp_path):
    from pollen_agent.storage.fs import FilesystemStorage

    return FilesystemStorage(tmp_path, site="site-a", base_url="http://hub.test", secret="s")
