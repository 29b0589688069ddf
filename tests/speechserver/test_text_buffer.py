from ivr_bridge.speechserver.text_buffer import TextBuffer


def test_releases_sentences_only_when_confirmed_by_whitespace() -> None:
    buffer = TextBuffer()
    assert buffer.append("Your balance is 3") == []
    assert buffer.append(".5 dollars. Anything") == ["Your balance is 3.5 dollars."]
    assert buffer.append(" else?") == []
    assert buffer.append("\n") == ["Anything else?"]
    assert buffer.flush() is None


def test_long_text_without_sentence_end_is_cut_at_a_clause() -> None:
    buffer = TextBuffer(max_context_chars=60)
    ready = buffer.append("first clause with several words, second clause keeps going and going on")
    assert ready == ["first clause with several words,"]
    assert buffer.flush() == "second clause keeps going and going on"


def test_clear_drops_pending_text() -> None:
    buffer = TextBuffer()
    buffer.append("never spoken")
    buffer.clear()
    assert buffer.flush() is None


def test_sentence_longer_than_the_context_is_cut_before_its_end() -> None:
    buffer = TextBuffer(max_context_chars=40)
    ready = buffer.append("word " * 30 + "end. Next one")
    assert ready and all(len(segment) <= 40 for segment in ready)
    assert " ".join(ready).split() == ["word"] * 30 + ["end."]
    assert buffer.flush() == "Next one"
