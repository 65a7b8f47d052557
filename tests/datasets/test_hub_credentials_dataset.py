import pytest
from kedro.io import DataCatalog, DatasetError

from embedding_distillation.datasets.hub_credentials_dataset import HubCredentialsDataset
from embedding_distillation.hub import HubCredentials

TOKEN = "hf_catalogToken0123456789"
CATALOG = {
    "hub_credentials": {
        "type": "embedding_distillation.datasets.hub_credentials_dataset.HubCredentialsDataset",
        "credentials": "huggingface",
    }
}


def test_loads_the_token_of_the_catalog_credentials_and_never_shows_it():
    catalog = DataCatalog.from_config(CATALOG, credentials={"huggingface": {"token": TOKEN}})
    loaded = catalog.load("hub_credentials")
    assert loaded == HubCredentials(token=TOKEN)
    shown = [repr(loaded), str(loaded), repr(catalog), str(catalog["hub_credentials"])]
    shown.append(str(catalog["hub_credentials"]._describe()))
    assert all(TOKEN not in text for text in shown)
    assert "***" in str(catalog["hub_credentials"])


@pytest.mark.parametrize("credentials", [None, {}, {"token": None}, {"token": ""}])
def test_no_token_loads_none(credentials):
    dataset = HubCredentialsDataset(credentials=credentials)
    assert dataset.load().token is None
    assert "***" not in str(dataset)


def test_is_read_only():
    with pytest.raises(
        DatasetError,
        match=r"HubCredentialsDataset is read-only: put the token in conf/local/credentials\.yml",
    ):
        HubCredentialsDataset().save(HubCredentials(token=TOKEN))


def test_the_catalog_endpoint_comes_with_the_token():
    dataset = HubCredentialsDataset(
        credentials={"token": TOKEN}, hub_endpoint="https://hub.example.com"
    )
    assert dataset.load() == HubCredentials(token=TOKEN, endpoint="https://hub.example.com")
    assert "https://hub.example.com" in str(dataset) and TOKEN not in str(dataset)
