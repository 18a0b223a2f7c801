/*
 * chat.h: the chat server of the OTP case studies on Tandem's behaviours.
 *
 * A room is a gen_server registered as "room:<name>" that owns its member
 * list and a short history. Rooms are started on demand under a
 * simple_one_for_one supervisor ("rooms"); if a room crashes, the
 * supervisor restarts it (transient: a room that is closed stays closed)
 * and members, who monitor it, join again.
 *
 * Members are any processes: a room sends them CHAT_MSG_LINE messages.
 * All functions here are called from process context and block on calls.
 */
#ifndef CHAT_H
#define CHAT_H

#include "rt/rt.h"

#define CHAT_NAME_MAX 32
#define CHAT_TEXT_MAX 200
#define CHAT_HISTORY 8

/* What a member receives: one line said in a room. */
#define CHAT_MSG_LINE 100u

struct chat_line {
    char room[CHAT_NAME_MAX];
    char nick[CHAT_NAME_MAX];
    char text[CHAT_TEXT_MAX];
};

/* Starts the application's top supervisor (linked to the caller):
 * rest_for_one over the rooms supervisor. */
int chat_app_start(rt_pid *sup);

/* The room's pid, starting the room if needed. */
int chat_room_open(const char *room, rt_pid *out);
/* Joins the caller as `nick`: 0, -EEXIST if the nick is taken. */
int chat_join(rt_pid room, const char *nick);
int chat_leave(rt_pid room);
/* Says `text` in the room as the caller's nick: every member (the sender
 * included) gets a CHAT_MSG_LINE. -EPERM if the caller has not joined. */
int chat_say(rt_pid room, const char *text);
/* Copies up to max lines of history, oldest first; returns the count. */
int chat_history(rt_pid room, struct chat_line *out, int max);
/* Closes the room: it stops normally and is not restarted. */
int chat_room_close(rt_pid room);

#endif
