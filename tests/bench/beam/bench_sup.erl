%% bench_sup: one_for_one supervisor of one registered bench_server, with an
%% intensity that one block of the restart workload (100) never exhausts.
-module(bench_sup).
-behaviour(supervisor).
-export([init/1]).

init([]) ->
    Flags = #{strategy => one_for_one, intensity => 1000, period => 1},
    Child = #{id => bench_child,
              start => {bench_server, start_link, []},
              restart => permanent,
              shutdown => 5000,
              type => worker},
    {ok, {Flags, [Child]}}.
