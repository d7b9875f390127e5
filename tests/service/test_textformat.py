import pytest

from magedl.errors import FeedError
from magedl.service.catalog import Release, parse_feed
from magedl.service.textformat import HELP_TEXT, parse_table, parse_versions, render_table, render_versions

MD5 = "0123456789abcdef0123456789abcdef"

TABLE_2016 = (
    "File Description            File Type  Md5 Hash                          "
    "Publication Date     Version   File Name\r\n"
    "-----------------------------------------------------------------------------------"
    "--------------------------------------------\r\n"
    "Magento CE 2.4.6            ce-full    0123456789ABCDEF0123456789ABCDEF  "
    "2023-03-14 10:00:00  2.4.6     Magento-CE-2.4.6.tar.gz   \r\n"
    "\r\n"
    "Magento CE  2.4.6 (sample)  ce-full    -                                 "
    "-                    2.4.6-p1  Magento-CE-2.4.6-p1_sample_data.zip\r\n"
    "SUPEE-6788  ce-patch  fedcba9876543210fedcba9876543210  2015-10-27 00:00:00  1.9.2.1  "
    "patches/PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh\r\n"
)

TABLE_2015 = """\
File Description    File Type  Version  File Name
---------------------------------------------------
Magento CE 1.9.2.1  ce-full    1.9.2.1  magento-1.9.2.1.tar.gz
SUPEE-5344          ce-patch   1.9.1.0  PATCH_SUPEE-5344_CE_1.8.0.0_v1.sh
"""


def test_parse_2016_table():
    releases = parse_table(TABLE_2016)
    assert [(r.name, r.type, r.md5, r.version, r.file_name, r.extra) for r in releases] == [
        ("Magento CE 2.4.6", "ce-full", MD5, "2.4.6", "Magento-CE-2.4.6.tar.gz",
         {"date": "2023-03-14 10:00:00"}),
        ("Magento CE  2.4.6 (sample)", "ce-full", "", "2.4.6-p1",
         "Magento-CE-2.4.6-p1_sample_data.zip", {}),
        ("SUPEE-6788", "ce-patch", "fedcba9876543210fedcba9876543210", "1.9.2.1",
         "patches/PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh", {"date": "2015-10-27 00:00:00"}),
    ]


def test_parse_2015_table_by_column_names():
    releases = parse_table(TABLE_2015)
    assert [(r.name, r.type, r.md5, r.version, r.file_name, r.extra) for r in releases] == [
        ("Magento CE 1.9.2.1", "ce-full", "", "1.9.2.1", "magento-1.9.2.1.tar.gz", {}),
        ("SUPEE-5344", "ce-patch", "", "1.9.1.0", "PATCH_SUPEE-5344_CE_1.8.0.0_v1.sh", {}),
    ]


def test_parse_reordered_and_unknown_columns():
    text = "File Type  Version  File Description  Size  File Name\n" \
           "ce-full  2.4.6  Magento  CE  1234  a.zip\n"
    (r,) = parse_table(text)
    assert (r.type, r.version, r.name, r.file_name, r.extra) == (
        "ce-full", "2.4.6", "Magento  CE", "a.zip", {"size": "1234"})


@pytest.mark.parametrize("text", ["No results found.", "No results found.\n", "\r\n No results found. \r\n"])
def test_no_results(text):
    assert parse_table(text) == []


def test_header_without_rows_is_empty():
    assert parse_table("File Description  File Type  Version  File Name\n-----\n") == []


@pytest.mark.parametrize("text", [
    "", "\n\n", "<html><body>Unauthorized</body></html>", "Invalid credentials",
    '{"ce-full": {}}', "No results found.\nmore"])
def test_not_a_table(text):
    with pytest.raises(FeedError):
        parse_table(text)


def test_misfit_rows_skipped_with_warning():
    text = (
        "File Description  File Type  Md5 Hash  Publication Date  Version  File Name\n"
        "-----\n"
        "Good  ce-full  -  -  2.4.6  good.zip\n"
        "too  short\n"
        "Spaced  ce-full  -  -  2.4 6  bad.zip\n"
        "BadMd5  ce-full  xyz  -  2.4.6  md5.zip\n"
        "ce-full  -  -  2.4.7  nodesc.zip\n"
        "No name  ce-full  -  -  2.4.7  -\n"
    )
    warnings = []
    releases = parse_table(text, warn=warnings.append)
    assert [(r.name, r.md5, r.file_name) for r in releases] == [
        ("Good", "", "good.zip"), ("BadMd5", "", "md5.zip"), ("nodesc.zip", "", "nodesc.zip")]
    assert warnings == [
        "file list line 4: does not fit the columns; skipped",
        "file list line 5: does not fit the columns; skipped",
        "file list line 6: md5 of md5.zip is not 32 hex digits; ignored",
        "file list line 8: does not fit the columns; skipped",
    ]


def sample_releases():
    return [
        Release("Magento CE 2.4.6", "Magento-CE-2.4.6.tar.gz", "2.4.6", "ce-full", MD5,
                extra={"date": "2023-03-14 10:00:00"}),
        Release("Two  spaces  inside", "sub/dir/file.zip", "2.4.6-p1", "ce-full", ""),
        Release("Other thing", "readme.txt", "", "other", ""),
        Release("EE", "Magento-EE-2.3.4.zip", "2.3.4", "ee-full", MD5, extra={"date": "2020-01-22"}),
    ]


def test_render_table_layout():
    text = render_table(sample_releases()[:1])
    assert text == (
        "File Description  File Type  Md5 Hash                          Publication Date     "
        "Version  File Name\n"
        + "-" * 116 + "\n"
        "Magento CE 2.4.6  ce-full    0123456789abcdef0123456789abcdef  2023-03-14 10:00:00  "
        "2.4.6    Magento-CE-2.4.6.tar.gz\n"
    )


def test_render_parse_round_trip():
    releases = sample_releases()
    text = render_table(releases)
    warnings = []
    back = parse_table(text, warn=warnings.append)
    assert back == releases
    assert warnings == []
    assert [r.extra for r in back] == [{"date": "2023-03-14 10:00:00"}, {}, {}, {"date": "2020-01-22"}]


def test_render_table_round_trip_from_feed():
    data = {"ce-full": {"2.4.6": [{"file_name": "a.tar.gz", "md5": MD5, "size": 5}]},
            "other": [{"name": "x\ny", "file_name": "x.zip"}]}
    releases = parse_feed(data)
    back = parse_table(render_table(releases))
    assert back[0] == releases[0]
    assert (back[1].name, back[1].file_name) == ("x y", "x.zip")  # a line break cannot stay


def test_render_empty():
    assert render_table([]) == "No results found.\n"
    assert parse_table(render_table([])) == []


VERSIONS = """\
CE Versions
-----------
2.4.6
2.4.10
2.4.6-p1
1.9.4.5

EE Versions
-----------
2.4.6
2.4.7
"""


def test_parse_versions():
    assert parse_versions(VERSIONS) == {
        "CE": ["2.4.10", "2.4.6-p1", "2.4.6", "1.9.4.5"],
        "EE": ["2.4.7", "2.4.6"],
    }


def test_parse_versions_tolerant():
    text = "\r\nce versions  \r\n----\r\n2.4.6\r\n2.4.6\r\nEE Versions\r\n---\r\n\r\n"
    assert parse_versions(text) == {"CE": ["2.4.6"], "EE": []}


@pytest.mark.parametrize("text", ["", "2.4.6\n2.4.7\n", "<html>Forbidden</html>"])
def test_parse_versions_rejects(text):
    with pytest.raises(FeedError):
        parse_versions(text)


def test_render_versions():
    releases = sample_releases() + [
        Release("p", "p.sh", "2.4.9", "ce-patch", ""),
        Release("dup", "dup.zip", "2.4.6", "ce-full", ""),
        Release("nov", "nov.zip", "", "ce-full", ""),
    ]
    text = render_versions(releases)
    assert text == "CE Versions\n-----------\n2.4.6-p1\n2.4.6\n\nEE Versions\n-----------\n2.3.4\n"
    assert parse_versions(text) == {"CE": ["2.4.6-p1", "2.4.6"], "EE": ["2.3.4"]}


def test_render_versions_omits_empty_edition():
    text = render_versions([Release("e", "e.zip", "2.3.4", "ee-full", "")])
    assert text == "EE Versions\n-----------\n2.3.4\n"
    assert render_versions([]) == "No results found.\n"
    assert parse_versions(render_versions([])) == {}


def test_help_text_lists_endpoints():
    for path in ("info/help", "info/files", "info/versions", "info/filter/version/",
                 "info/filter/type/", "info/json", "file/"):
        assert path in HELP_TEXT
