/*
 * room.c: a chat room (gen_server) and the supervisors above it.
 *
 * The room's state is rt_alloc'd by its process: members (pid, nick,
 * monitor ref), a ring of the last CHAT_HISTORY lines and the room's event
 * manager (gen_event), which the room starts linked and which holds one
 * handler per member: a line said in the room is one notify, and each
 * member's handler forwards it to its member, so the room does not wait on
 * the fan-out. Members are monitored, so a member that dies leaves the room
 * (and its handler) by itself. The manager ends with the room: it is the
 * room's linked child.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "chat.h"
#include "rt/gen_event.h"
#include "rt/gen_server.h"
#include "rt/supervisor.h"

#define MAX_MEMBERS 64

enum { REQ_JOIN = 1, REQ_LEAVE, REQ_SAY, REQ_HISTORY, REQ_CLOSE };

struct member {
    rt_pid pid;
    rt_ref mref;
    char nick[CHAT_NAME_MAX];
};

struct room {
    char name[CHAT_NAME_MAX];
    rt_pid events; /* the gen_event manager broadcasting lines */
    struct member members[MAX_MEMBERS];
    int nmembers;
    struct chat_line history[CHAT_HISTORY];
    int nhistory, head;
};

struct req {
    char text[CHAT_TEXT_MAX]; /* nick for JOIN, text for SAY */
};

struct rep {
    int rc;
    int count;
    struct chat_line lines[CHAT_HISTORY];
};

static struct member *find(struct room *r, rt_pid pid)
{
    for (int i = 0; i < r->nmembers; i++)
        if (r->members[i].pid == pid)
            return &r->members[i];
    return NULL;
}

/* ---- the member handler: forwards the room's lines to one member ---------- */

/* The event a room notifies its manager of: one struct chat_line. */
#define ROOM_EV_LINE 1u

static void member_init(const void *arg, size_t size, const struct rt_ge_swap *swap,
                        struct rt_ge_result *res)
{
    rt_pid *pid = rt_alloc(sizeof *pid);
    if (!pid || size != sizeof *pid) {
        rt_ge_error(res, RT_BADARG);
        return;
    }
    memcpy(pid, arg, sizeof *pid);
    res->state = pid;
}

static void member_event(const struct rt_msg *ev, void *state, struct rt_ge_result *res)
{
    if (ev->type == ROOM_EV_LINE)
        rt_send(*(rt_pid *)state, rt_msg_copy(CHAT_MSG_LINE, ev->data, ev->size));
}

static struct rt_msg *member_terminate(const struct rt_ge_stop *stop, void *state)
{
    rt_free(state);
    return NULL;
}

static const struct rt_ge_handler_ops member_ops = {
    .name = "chat_member",
    .init = member_init,
    .handle_event = member_event,
    .terminate = member_terminate,
};

/* A member's handler is told apart from the others by the member's pid. */
static struct rt_ge_handler member_handler(rt_pid pid)
{
    return (struct rt_ge_handler){&member_ops, pid};
}

/* ---- the room -------------------------------------------------------------- */

static void drop(struct room *r, struct member *m)
{
    rt_gen_event_delete_handler(r->events, member_handler(m->pid), NULL, 0, NULL);
    *m = r->members[--r->nmembers];
}

static void room_init(void *arg, struct rt_gs_result *res)
{
    struct room *r = rt_calloc(1, sizeof *r);
    if (!r) {
        rt_gs_stop(res, RT_SYSTEM_LIMIT);
        return;
    }
    snprintf(r->name, sizeof r->name, "%s", (const char *)arg);
    rt_atom why = RT_NORMAL;
    if (rt_gen_event_start_link(NULL, &r->events, &why) < 0) {
        rt_gs_stop(res, why);
        return;
    }
    res->state = r;
}

static int say(struct room *r, struct member *from, const char *text)
{
    struct chat_line line = {0};
    snprintf(line.room, sizeof line.room, "%s", r->name);
    snprintf(line.nick, sizeof line.nick, "%s", from->nick);
    snprintf(line.text, sizeof line.text, "%s", text);
    r->history[(r->head + r->nhistory) % CHAT_HISTORY] = line;
    if (r->nhistory < CHAT_HISTORY)
        r->nhistory++;
    else
        r->head = (r->head + 1) % CHAT_HISTORY;
    /* One event; the manager runs it through every member's handler. */
    struct rt_msg *ev = rt_msg_copy(ROOM_EV_LINE, &line, sizeof line);
    return ev ? rt_gen_event_notify(r->events, ev) : -ENOMEM;
}

static void room_call(struct rt_msg *m, const struct rt_gs_from *from, void *state,
                      struct rt_gs_result *res)
{
    struct room *r = state;
    struct rt_msg *reply = rt_msg_new(0, sizeof(struct rep));
    if (!reply) {
        rt_gs_stop(res, RT_SYSTEM_LIMIT);
        return;
    }
    struct rep *p = (struct rep *)reply->data;
    struct req q = {0};
    if (m->size >= sizeof q)
        memcpy(&q, m->data, sizeof q);
    q.text[sizeof q.text - 1] = 0;
    struct member *who = find(r, from->pid);
    switch (m->type) {
    case REQ_JOIN:
        for (int i = 0; i < r->nmembers; i++)
            if (strcmp(r->members[i].nick, q.text) == 0)
                p->rc = -EEXIST;
        if (p->rc == 0 && (who || r->nmembers == MAX_MEMBERS))
            p->rc = who ? -EALREADY : -ENOSPC;
        if (p->rc == 0)
            p->rc = rt_gen_event_add_handler(r->events, member_handler(from->pid), &from->pid,
                                             sizeof from->pid, NULL);
        if (p->rc == 0) {
            struct member *nm = &r->members[r->nmembers++];
            nm->pid = from->pid;
            nm->mref = rt_monitor(from->pid);
            snprintf(nm->nick, sizeof nm->nick, "%.*s", CHAT_NAME_MAX - 1, q.text);
        }
        break;
    case REQ_LEAVE:
        if (!who) {
            p->rc = -ENOENT;
            break;
        }
        rt_demonitor(who->mref, true);
        drop(r, who);
        break;
    case REQ_SAY:
        p->rc = who ? say(r, who, q.text) : -EPERM;
        break;
    case REQ_HISTORY:
        p->count = r->nhistory;
        for (int i = 0; i < r->nhistory; i++)
            p->lines[i] = r->history[(r->head + i) % CHAT_HISTORY];
        break;
    case REQ_CLOSE:
        rt_gs_stop_reply(res, RT_NORMAL, reply);
        return;
    default:
        p->rc = -EINVAL;
    }
    rt_gs_reply(res, reply);
}

static void room_info(struct rt_msg *m, void *state, struct rt_gs_result *res)
{
    struct room *r = state;
    if (m->type != RT_MSG_DOWN)
        return;
    struct member *who = find(r, m->from);
    if (who && who->mref == m->ref)
        drop(r, who);
}

static size_t room_format(const void *state, char *buf, size_t len)
{
    const struct room *r = state;
    return (size_t)snprintf(buf, len, "room %s: %d members, %d lines", r->name, r->nmembers,
                            r->nhistory);
}

static const struct rt_gen_server_ops room_ops = {
    .name = "chat_room",
    .init = room_init,
    .handle_call = room_call,
    .handle_info = room_info,
    .format_status = room_format,
};

/* ---- supervision ---------------------------------------------------------------- */

/* simple_one_for_one start: the extra argument is the room's name. */
static int room_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    char name[CHAT_NAME_MAX], reg[CHAT_NAME_MAX + 8];
    snprintf(name, sizeof name, "%.*s", (int)extra_size, (const char *)extra);
    snprintf(reg, sizeof reg, "room:%s", name);
    struct rt_start_opts o = {.name = reg};
    return rt_gen_server_start_link(&room_ops, name, &o, out, reason);
}

static int rooms_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    const struct rt_child_spec room = {
        .id = "room", .start = room_start, .restart = RT_TRANSIENT, .shutdown = 1000};
    *flags = (struct rt_sup_flags){RT_SIMPLE_ONE_FOR_ONE, 5, 10, RT_AUTO_NEVER};
    return rt_sup_init_child(init, &room);
}

static int rooms_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                       rt_atom *reason)
{
    struct rt_start_opts o = {.name = "rooms"};
    return rt_sup_start_link(rooms_init, NULL, &o, out, reason);
}

static int app_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    const struct rt_child_spec specs[] = {
        {.id = "rooms", .start = rooms_start, .type = RT_SUPERVISOR},
    };
    *flags = (struct rt_sup_flags){RT_REST_FOR_ONE, 3, 5, RT_AUTO_NEVER};
    return rt_sup_init_children(init, specs, sizeof specs / sizeof specs[0]);
}

int chat_app_start(rt_pid *sup)
{
    struct rt_start_opts o = {.name = "chat_sup"};
    return rt_sup_start_link(app_init, NULL, &o, sup, NULL);
}

/* ---- client API -------------------------------------------------------------------- */

int chat_room_open(const char *room, rt_pid *out)
{
    char reg[CHAT_NAME_MAX + 8];
    size_t len = strlen(room);
    if (len == 0 || len >= CHAT_NAME_MAX)
        return -EINVAL;
    snprintf(reg, sizeof reg, "room:%s", room);
    rt_pid pid = rt_whereis(reg);
    if (pid) {
        *out = pid;
        return 0;
    }
    rt_pid rooms = rt_whereis("rooms");
    if (!rooms)
        return -ESRCH;
    int rc = rt_sup_start_child_extra(rooms, room, len, &pid, NULL);
    if (rc == -ECHILD) /* another client opened it first: already registered */
        pid = rt_whereis(reg);
    else if (rc < 0)
        return rc;
    if (!pid)
        return -ESRCH;
    *out = pid;
    return 0;
}

static int request(rt_pid room, uint32_t type, const char *text, struct rep *out)
{
    struct req q = {0};
    if (text)
        snprintf(q.text, sizeof q.text, "%s", text);
    struct rt_msg *reply = NULL;
    int rc = rt_gen_server_call(room, rt_msg_copy(type, &q, sizeof q), 5000, &reply, NULL);
    if (rc < 0)
        return rc;
    struct rep p;
    memcpy(&p, reply->data, sizeof p);
    rt_msg_free(reply);
    if (out)
        *out = p;
    return p.rc;
}

int chat_join(rt_pid room, const char *nick)
{
    return request(room, REQ_JOIN, nick, NULL);
}

int chat_leave(rt_pid room)
{
    return request(room, REQ_LEAVE, NULL, NULL);
}

int chat_say(rt_pid room, const char *text)
{
    return request(room, REQ_SAY, text, NULL);
}

int chat_history(rt_pid room, struct chat_line *out, int max)
{
    struct rep p;
    int rc = request(room, REQ_HISTORY, NULL, &p);
    if (rc < 0)
        return rc;
    int n = p.count < max ? p.count : max;
    memcpy(out, p.lines, (size_t)n * sizeof *out);
    return n;
}

int chat_room_close(rt_pid room)
{
    return request(room, REQ_CLOSE, NULL, NULL);
}
