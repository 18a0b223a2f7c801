%% bench_handler: the event handler of rt_bench's gen_event_notify workload.
%% It counts the events it sees; the call `count` answers the count.
-module(bench_handler).
-behaviour(gen_event).
-export([init/1, handle_event/2, handle_call/2]).

init(_) -> {ok, 0}.

handle_event(_Event, N) -> {ok, N + 1}.

handle_call(count, N) -> {ok, N, N}.
