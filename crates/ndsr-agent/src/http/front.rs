//! The layer in front of every route: the token and read-only checks
//! ([`auth::refusal`]) and the request's metrics ([`Count`]), in one
//! service whose future is the route's own plus a few words.
//!
//! A waiting blocking query keeps its whole chain of futures for as long as
//! it waits, one per waiting client: two `from_fn` middlewares cost about
//! 4 KB of boxed futures per request (each boxes its own future and the
//! rest of the chain again); this layer boxes nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::Request;
use axum::response::Response;
use futures::future::{ready, Either, Ready};
use tower_layer::Layer;
use tower_service::Service;

use super::auth;
use super::metrics::Count;
use crate::state::Agent;

/// The front layer: [`auth::refusal`] and [`Count`] for every request.
#[derive(Clone)]
pub struct Front {
    agent: Arc<Agent>,
}

impl Front {
    /// The layer for `agent`'s router.
    pub fn new(agent: Arc<Agent>) -> Front {
        Front { agent }
    }
}

impl<S> Layer<S> for Front {
    type Service = FrontService<S>;

    fn layer(&self, inner: S) -> FrontService<S> {
        FrontService { agent: self.agent.clone(), inner }
    }
}

/// [`Front`] around a route.
#[derive(Clone)]
pub struct FrontService<S> {
    agent: Arc<Agent>,
    inner: S,
}

impl<S, B> Service<Request<B>> for FrontService<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, Counted<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Counted first: a refused request is counted with its status.
        let count = Count::begin(&request);
        match auth::refusal(&self.agent, &request) {
            Some(refused) => Either::Left(ready(Ok(count.finish(refused)))),
            None => Either::Right(Counted { inner: self.inner.call(request), count: Some(count) }),
        }
    }
}

pin_project_lite::pin_project! {
    /// A route's answer, counted when it comes (and the request no longer
    /// in flight when it is dropped, answered or not).
    pub struct Counted<F> {
        #[pin]
        inner: F,
        count: Option<Count>,
    }
}

impl<F, E> Future for Counted<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answered = std::task::ready!(this.inner.poll(cx));
        Poll::Ready(answered.map(|response| match this.count.take() {
            Some(count) => count.finish(response),
            None => response,
        }))
    }
}
