//! `GET /api/mj/self` and `GET /api/mj/`: task histories, paged, newest first. Times are Unix
//! seconds here; filters accept seconds or milliseconds.

use super::auth::{Admin, ApiUser};
use super::{Data, ManageError};
use crate::http::extract::BaseUrl;
use crate::relay::view::image_url;
use crate::state::AppState;
use crate::store::{Task, TaskFilter};
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    p: Option<String>,
    page_size: Option<String>,
    mj_id: Option<String>,
    start_timestamp: Option<String>,
    end_timestamp: Option<String>,
    channel_id: Option<String>,
    user_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct HistoryItem {
    id: i64,
    mj_id: String,
    action: String,
    prompt: String,
    prompt_en: String,
    status: String,
    progress: String,
    image_url: Option<String>,
    video_url: Option<String>,
    video_urls: Vec<String>,
    submit_time: i64,
    start_time: i64,
    finish_time: i64,
    fail_reason: Option<String>,
    quota: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_id: Option<Option<i64>>,
}

#[derive(Debug, Serialize)]
pub struct Page {
    items: Vec<HistoryItem>,
    total: i64,
    page: i64,
    page_size: i64,
}

pub async fn own_tasks(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    BaseUrl(base): BaseUrl,
    Query(query): Query<HistoryQuery>,
) -> Result<Data<Page>, ManageError> {
    if query.user_id.is_some() || query.channel_id.is_some() {
        return Err(ManageError::BadRequest(
            "user_id and channel_id are admin filters".to_string(),
        ));
    }
    let mut filter = read_filter(&query)?;
    filter.user_id = Some(user.id);
    page(&state, &base, filter, false).await
}

pub async fn all_tasks(
    State(state): State<AppState>,
    _: Admin,
    BaseUrl(base): BaseUrl,
    Query(query): Query<HistoryQuery>,
) -> Result<Data<Page>, ManageError> {
    let mut filter = read_filter(&query)?;
    filter.user_id = number("user_id", &query.user_id)?;
    filter.channel_id = number("channel_id", &query.channel_id)?;
    page(&state, &base, filter, true).await
}

async fn page(
    state: &AppState,
    base: &str,
    filter: TaskFilter,
    admin: bool,
) -> Result<Data<Page>, ManageError> {
    let (tasks, total) = state.store.list_tasks(&filter).await?;
    let items = tasks.iter().map(|t| item(t, base, state, admin)).collect();
    Ok(Data(Page {
        items,
        total,
        page: filter.offset / filter.limit + 1,
        page_size: filter.limit,
    }))
}

fn read_filter(query: &HistoryQuery) -> Result<TaskFilter, ManageError> {
    let page = number("p", &query.p)?.unwrap_or(1);
    let page_size = number("page_size", &query.page_size)?.unwrap_or(20);
    if page < 1 {
        return Err(ManageError::BadRequest("p starts at 1".to_string()));
    }
    if !(1..=100).contains(&page_size) {
        return Err(ManageError::BadRequest(
            "page_size must be 1 to 100".to_string(),
        ));
    }
    Ok(TaskFilter {
        mj_id: query.mj_id.clone().filter(|s| !s.is_empty()),
        submitted_from: number("start_timestamp", &query.start_timestamp)?.map(to_millis),
        // An end given in seconds covers the whole of that second.
        submitted_to: number("end_timestamp", &query.end_timestamp)?
            .map(|t| if is_millis(t) { t } else { t * 1000 + 999 }),
        offset: (page - 1) * page_size,
        limit: page_size,
        ..TaskFilter::default()
    })
}

fn number(name: &str, value: &Option<String>) -> Result<Option<i64>, ManageError> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ManageError::BadRequest(format!("{name} must be a number"))),
    }
}

/// Seconds until the year 5138; anything larger is milliseconds.
fn is_millis(t: i64) -> bool {
    t > 100_000_000_000
}

fn to_millis(t: i64) -> i64 {
    if is_millis(t) { t } else { t * 1000 }
}

fn item(task: &Task, base: &str, state: &AppState, admin: bool) -> HistoryItem {
    HistoryItem {
        id: task.id,
        mj_id: task.mj_id.clone(),
        action: task.action.to_string(),
        prompt: task.prompt.clone(),
        prompt_en: task.prompt_en.clone(),
        status: task.status.to_string(),
        progress: task.progress.clone(),
        image_url: task
            .upstream_image_url
            .as_ref()
            .map(|_| image_url(base, &task.mj_id, &state.signer)),
        video_url: task.video_url.clone(),
        video_urls: task.video_urls.0.clone(),
        submit_time: task.submit_time / 1000,
        start_time: task.start_time / 1000,
        finish_time: task.finish_time / 1000,
        fail_reason: task.fail_reason.clone(),
        quota: task.quota,
        user_id: admin.then_some(task.user_id),
        channel_id: admin.then_some(task.channel_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_seconds_or_milliseconds() {
        let query = HistoryQuery {
            start_timestamp: Some("1700000000".into()),
            end_timestamp: Some("1700000000500".into()),
            ..Default::default()
        };
        let filter = read_filter(&query).unwrap();
        assert_eq!(filter.submitted_from, Some(1_700_000_000_000));
        assert_eq!(filter.submitted_to, Some(1_700_000_000_500));
        assert!(
            read_filter(&HistoryQuery {
                page_size: Some("101".into()),
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            read_filter(&HistoryQuery {
                p: Some("x".into()),
                ..Default::default()
            })
            .is_err()
        );
    }
}
