//! The CORS headers of a function URL: with the URL's own CORS settings in charge, the router's
//! are dropped.

use axum::Router;

/// With `CHATFN_LAMBDA_URL_CORS=true` (the SAM template sets it), the function URL's own CORS
/// settings answer browsers: the URL answers preflight requests without invoking the function
/// and adds the CORS headers to every response. It adds them even when the function sent its
/// own, and a browser refuses two `Access-Control-Allow-Origin` values, so the router's CORS
/// headers are dropped.
pub(crate) fn cors_by_url(router: Router) -> Router {
    let enabled = std::env::var("CHATFN_LAMBDA_URL_CORS")
        .is_ok_and(|value| matches!(value.trim(), "1" | "true"));
    if enabled {
        router.layer(axum::middleware::map_response(without_cors_headers))
    } else {
        router
    }
}

/// The response without any `Access-Control-*` header.
pub async fn without_cors_headers(
    mut response: axum::response::Response,
) -> axum::response::Response {
    let headers = response.headers_mut();
    let names: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cors_headers_can_be_left_to_the_function_url() {
        let response = axum::http::Response::builder()
            .header("access-control-allow-origin", "*")
            .header("access-control-expose-headers", "x-stream-version")
            .header("content-type", "text/event-stream")
            .body(axum::body::Body::empty())
            .expect("response");
        let response = without_cors_headers(response).await;
        let names: Vec<&str> = response.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["content-type"]);
    }
}
