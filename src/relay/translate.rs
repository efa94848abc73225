//! Upstream answers, read as decisions (SPEC 1.3): accepted, refused for the client's
//! reasons, or refused for the channel's reasons (so another channel may take it).

use crate::domain::TaskStatus;
use crate::proto::{SubmitResult, code};
use serde_json::{Map, Value};

/// What an upstream answer to a submit means for the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The channel took the task under `upstream_id`.
    Accepted {
        upstream_id: String,
        status: TaskStatus,
        /// Tasks ahead in the upstream's queue (code 22).
        queue_ahead: Option<i64>,
    },
    /// The channel already runs this very task (code 21 "already exists").
    Existing { upstream_id: String },
    /// The request itself is at fault (validation, banned prompt): no other channel would
    /// take it either.
    Refused {
        description: String,
        properties: Map<String, Value>,
    },
    /// The channel cannot take it now (no account, queue full, failure): try another.
    TryElsewhere(String),
    /// An answer that does not say what happened; the upstream may hold the task.
    Unclear(String),
}

/// Reads a submit answer. `expects_modal` is true for buttons that open a pop-up, whose
/// acceptance is code 21.
pub fn verdict(answer: &SubmitResult, expects_modal: bool) -> Verdict {
    let id = answer.task_id().map(str::to_string);
    match (answer.code, id) {
        (code::SUCCESS, Some(upstream_id)) => Verdict::Accepted {
            upstream_id,
            status: TaskStatus::Submitted,
            queue_ahead: None,
        },
        (code::IN_QUEUE, Some(upstream_id)) => Verdict::Accepted {
            upstream_id,
            status: TaskStatus::Submitted,
            queue_ahead: Some(
                answer
                    .properties
                    .get("numberOfQueues")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
            ),
        },
        (code::EXISTED, Some(upstream_id)) if expects_modal || is_modal_answer(answer) => {
            Verdict::Accepted {
                upstream_id,
                status: TaskStatus::Modal,
                queue_ahead: None,
            }
        }
        (code::EXISTED, Some(upstream_id)) => Verdict::Existing { upstream_id },
        (code::VALIDATION_ERROR, _) => Verdict::Refused {
            description: non_empty(&answer.description, "the upstream refused the parameters"),
            properties: Map::new(),
        },
        (code::BANNED_PROMPT, _) => {
            let mut properties = Map::new();
            if let Some(word) = answer.properties.get("bannedWord") {
                properties.insert("bannedWord".to_string(), word.clone());
            }
            Verdict::Refused {
                description: non_empty(&answer.description, "the prompt may contain a banned word"),
                properties,
            }
        }
        (code::NOT_FOUND | code::QUEUE_REJECTED | code::FAILURE, _) => {
            Verdict::TryElsewhere(format!("code {}: {}", answer.code, answer.description))
        }
        (other, _) => Verdict::Unclear(format!("code {other}: {}", answer.description)),
    }
}

fn is_modal_answer(answer: &SubmitResult) -> bool {
    answer.description.contains("window confirm")
}

fn non_empty(text: &str, fallback: &str) -> String {
    if text.trim().is_empty() {
        fallback.to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(v: Value) -> SubmitResult {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn reads_every_documented_code() {
        let ok =
            answer(json!({"code": 1, "description": "提交成功", "result": "1712205491372001"}));
        assert!(matches!(
            verdict(&ok, false),
            Verdict::Accepted {
                status: TaskStatus::Submitted,
                ..
            }
        ));

        let queued = answer(json!({"code": 22, "description": "排队中，前面还有2个任务",
            "result": "1712205491372002", "properties": {"numberOfQueues": 2}}));
        assert!(matches!(
            verdict(&queued, false),
            Verdict::Accepted {
                queue_ahead: Some(2),
                ..
            }
        ));

        let modal = answer(
            json!({"code": 21, "description": "Waiting for window confirm", "result": "1712205491372003"}),
        );
        assert!(matches!(
            verdict(&modal, true),
            Verdict::Accepted {
                status: TaskStatus::Modal,
                ..
            }
        ));

        let existed =
            answer(json!({"code": 21, "description": "任务已存在", "result": "1712205491372004"}));
        assert_eq!(
            verdict(&existed, false),
            Verdict::Existing {
                upstream_id: "1712205491372004".into()
            }
        );

        let banned = answer(
            json!({"code": 24, "description": "可能包含敏感词", "properties": {"bannedWord": "gore"}}),
        );
        match verdict(&banned, false) {
            Verdict::Refused { properties, .. } => assert_eq!(properties["bannedWord"], "gore"),
            other => panic!("{other:?}"),
        }

        for c in [3, 9, 23] {
            let refused = answer(json!({"code": c, "description": "x"}));
            assert!(matches!(verdict(&refused, false), Verdict::TryElsewhere(_)));
        }
        let weird = answer(json!({"code": 77, "description": "?"}));
        assert!(matches!(verdict(&weird, false), Verdict::Unclear(_)));
        let no_id = answer(json!({"code": 1, "description": "ok"}));
        assert!(matches!(verdict(&no_id, false), Verdict::Unclear(_)));
    }
}
