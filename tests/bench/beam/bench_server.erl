%% bench_server: the gen_server used by rt_bench's gen_server_call and
%% restart workloads. `{echo, X}` answers X; the cast `crash` stops the
%% server with reason `crash`.
-module(bench_server).
-behaviour(gen_server).
-export([start_link/0, init/1, handle_call/3, handle_cast/2]).

start_link() ->
    gen_server:start_link({local, bench_child}, ?MODULE, [], []).

init([]) -> {ok, 0}.

handle_call({echo, X}, _From, N) -> {reply, X, N + 1}.

handle_cast(crash, N) -> {stop, crash, N}.
