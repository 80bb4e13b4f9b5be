//! The task page's choice buttons (categories, taxonomies, a comparison's choices) and the
//! response form as it is sent: the editor's text, the buttons picked, the button pressed.

use serde_json::{Map, Value};
use tessera_core::tasks::{choice_questions, AnswerSlot, ChoiceQuestion};
use tessera_store::Task;

/// A choice question as the page shows it.
pub(super) struct QuestionView {
    /// The form field its buttons are sent as.
    pub field: String,
    /// The taxonomy's name; `None` for the task's one question.
    pub title: Option<String>,
    pub multiple: bool,
    pub options: Vec<OptionView>,
}

pub(super) struct OptionView {
    /// The input's element id (for its label).
    pub id: String,
    pub value: String,
    /// Picked in what the labeler sent last (never on a fresh page: the template picks
    /// nothing).
    pub checked: bool,
}

/// What a question's answer is in `response` (the editor's JSON), as a list of options.
fn answered(question: &ChoiceQuestion, response: &Value) -> Vec<String> {
    let answer = match &question.slot {
        AnswerSlot::Category => response.get("category"),
        AnswerSlot::Choice => response.get("choice"),
        AnswerSlot::Taxonomy(name) => response.get("taxonomies").and_then(|t| t.get(name)),
    };
    match answer {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The task's choice questions with what is picked: the labeler's picks on the form when
/// they sent any for a question, else the answer in the editor's text.
pub(super) fn question_views(
    task: &Task,
    params: &Map<String, Value>,
    response: &str,
    picks: &[(String, String)],
) -> Vec<QuestionView> {
    let typed: Value = serde_json::from_str(response).unwrap_or(Value::Null);
    choice_questions(task.task_type, params)
        .into_iter()
        .enumerate()
        .map(|(q, question)| {
            let field = question.field();
            let sent: Vec<String> = picks
                .iter()
                .filter(|(name, _)| *name == field)
                .map(|(_, value)| value.clone())
                .collect();
            let chosen = if sent.is_empty() {
                answered(&question, &typed)
            } else {
                sent
            };
            QuestionView {
                options: question
                    .options
                    .iter()
                    .enumerate()
                    .map(|(o, value)| OptionView {
                        id: format!("choice-{q}-{o}"),
                        value: value.clone(),
                        checked: chosen.contains(value),
                    })
                    .collect(),
                field,
                title: question.title,
                multiple: question.multiple,
            }
        })
        .collect()
}

/// Whether the attachment is an image to show inline beside the choice buttons.
pub(super) fn shows_image(params: &Map<String, Value>) -> bool {
    params.get("attachment_type").and_then(Value::as_str) == Some("image")
}

/// The response form as sent: the editor's text, the choice buttons picked, and which
/// submit button was pressed. Read as name/value pairs because check boxes repeat a name.
pub(super) struct ResponseForm {
    pub response: Option<String>,
    /// `(field, option)` for every choice button picked.
    pub picks: Vec<(String, String)>,
    /// "Submit with no boxes": the labeler confirms an empty annotation list.
    pub confirm_empty: bool,
    /// "Submit & next": take the next task of the queue once this one is in.
    pub and_next: bool,
}

/// Field names of the form that are not choice buttons.
const FORM_FIELDS: [&str; 4] = ["csrf_token", "response", "confirm_empty", "next"];

impl From<Vec<(String, String)>> for ResponseForm {
    fn from(pairs: Vec<(String, String)>) -> Self {
        let mut form = ResponseForm {
            response: None,
            picks: Vec::new(),
            confirm_empty: false,
            and_next: false,
        };
        for (name, value) in pairs {
            match name.as_str() {
                "response" => form.response = Some(value),
                "confirm_empty" => form.confirm_empty = true,
                "next" => form.and_next = true,
                _ if FORM_FIELDS.contains(&name.as_str()) => {}
                _ => form.picks.push((name, value)),
            }
        }
        form
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn the_form_is_split_into_text_picks_and_buttons() {
        let form = ResponseForm::from(pairs(&[
            ("csrf_token", "t"),
            ("response", "{}"),
            ("category", "a"),
            ("taxonomy:colour", "red"),
            ("category", "b"),
            ("next", "1"),
        ]));
        assert_eq!(form.response.as_deref(), Some("{}"));
        assert_eq!(
            form.picks,
            pairs(&[
                ("category", "a"),
                ("taxonomy:colour", "red"),
                ("category", "b")
            ])
        );
        assert!(form.and_next && !form.confirm_empty);
        let plain = ResponseForm::from(pairs(&[("confirm_empty", "1")]));
        assert!(plain.confirm_empty && !plain.and_next && plain.response.is_none());
    }

    #[test]
    fn an_answer_is_read_from_each_slot() {
        let question = |slot| ChoiceQuestion {
            slot,
            title: None,
            options: vec!["a".into(), "b".into()],
            multiple: true,
        };
        let response = serde_json::json!({
            "category": ["a", "b"], "choice": "b", "taxonomies": {"t": ["a"]}
        });
        assert_eq!(
            answered(&question(AnswerSlot::Category), &response),
            ["a", "b"]
        );
        assert_eq!(answered(&question(AnswerSlot::Choice), &response), ["b"]);
        let taxonomy = question(AnswerSlot::Taxonomy("t".into()));
        assert_eq!(answered(&taxonomy, &response), ["a"]);
        assert!(answered(&taxonomy, &Value::Null).is_empty());
    }
}
