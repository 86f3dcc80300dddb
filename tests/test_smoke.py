from atlas.media import ingest_paths, list_media


def test_ingest_folder_of_real_media(atlas, media_maker, tmp_path):
    folder = tmp_path / "lib"
    media_maker.copy(media_maker.video("a.mp4"), folder / "a.mp4")
    media_maker.copy(media_maker.audio("b.mp3"), folder / "b.mp3")
    report = ingest_paths(atlas.dispatcher, [folder])
    assert report.summary() == {"new": 2}
    assert list_media(atlas.engine).total == 2


def test_cli_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("atlas ")
