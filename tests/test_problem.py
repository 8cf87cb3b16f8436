"""The chat prompt a question is asked in (reasoning_lab.problem): with the reasoning system prompt, or directly."""

from reasoning_lab.problem import chat_prompt


def test_a_question_is_asked_with_the_system_prompt_or_alone():
    assert chat_prompt("2 + 2?", "Reason.") == [{"role": "system", "content": "Reason."},
                                                {"role": "user", "content": "2 + 2?"}]
    assert chat_prompt("2 + 2?", None) == [{"role": "user", "content": "2 + 2?"}]
